# Sourced by the run scripts: environment for headless runs.
export VTK_DEFAULT_OPENGL_WINDOW="${VTK_DEFAULT_OPENGL_WINDOW:-vtkEGLRenderWindow}"
export PYTHONUNBUFFERED=1
# Text files and subprocess output are UTF-8 whatever the machine's locale (CI may run with a bare C locale).
export PYTHONUTF8=1
# Math libraries size their thread pools from the CPUs they see; in a container that may be the host's count
# while the quota is a few cores (oversubscribed pools run many times slower). Use the quota when it is smaller.
_cpus=$(nproc 2>/dev/null || echo 2)
if [ -r /sys/fs/cgroup/cpu.max ]; then
  read -r _quota _period < /sys/fs/cgroup/cpu.max || true
  if [ "${_quota:-max}" != "max" ] && [ "${_period:-0}" -gt 0 ]; then
    _q=$(( (_quota + _period - 1) / _period ))
    [ "$_q" -lt "$_cpus" ] && _cpus=$_q
  fi
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$_cpus}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$_cpus}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$_cpus}"
unset _cpus _quota _period _q
