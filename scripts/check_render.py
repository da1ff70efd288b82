"""Exit 0 when VTK can render offscreen here (used by setup.sh)."""
import vtk

window = vtk.vtkRenderWindow()
window.SetOffScreenRendering(1)
window.SetSize(8, 8)
window.AddRenderer(vtk.vtkRenderer())
window.Render()
print(window.GetClassName())
