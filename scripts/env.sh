# Sourced by the run scripts: environment for headless runs.
export VTK_DEFAULT_OPENGL_WINDOW="${VTK_DEFAULT_OPENGL_WINDOW:-vtkEGLRenderWindow}"
export PYTHONUNBUFFERED=1
# Text files and subprocess output are UTF-8 whatever the machine's locale (CI may run with a bare C locale).
export PYTHONUTF8=1
