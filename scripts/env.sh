# Sourced by the run scripts: environment for headless runs.
export VTK_DEFAULT_OPENGL_WINDOW="${VTK_DEFAULT_OPENGL_WINDOW:-vtkEGLRenderWindow}"
export PYTHONUNBUFFERED=1
