"""The demo: a pipeline of steps over one scene (segmentation, synthetic endoscopy and depth, registration)."""
