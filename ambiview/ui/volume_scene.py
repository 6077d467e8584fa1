"""The 3D scene of a result, in pure VTK (no Qt): CT planes of the ROI, one smoothed surface per hypothesis, the
disagreement shell, the cursor, orientation labels.  `ui/volume_view.py` puts it in a Qt widget; tests and the
benchmark drive it offscreen.

Everything is in patient LPS millimetres.  Surfaces are mapped vertex by vertex through the ROI's `Geometry`
(`volume_surfaces.iso_surface`).  The CT planes and the ROI's outline are image-space actors placed with the ROI
geometry's affine matrix (`Geometry.affine`), which is that same mapping wherever the slices are evenly spaced; on an
unevenly spaced series they can sit a fraction of a slice off the surfaces, which stay exact.

- Hypothesis i is drawn in `palette.hypothesis_rgb(i)`, the colour of its 2D contour.  The current one is opaque;
  the others faint or hidden (`set_others`).
- The disagreement shell is the region covered by some but not all hypotheses (coverage count strictly between 0
  and n), drawn as a translucent surface.
- The CT planes pass through the cursor (the 2D views' crosshair), clamped into the ROI: the axial one alone by
  default (all three planes through a lesion hide most of it), all three, or none; a small cross marks the cursor
  itself when it lies inside the ROI.
- Translucent surfaces are drawn without depth peeling: with Mesa's software renderer, peeling made the frame with
  faint others about 9 times slower (benchmarks/README.md), and the layers differ too little in colour for their
  order to show.
- Hypothesis surfaces are extracted lazily: `show` only records what is needed, `extract(budget)` computes some of
  it, so a caller can keep its event loop turning while hypotheses stream in; or `prefetch`/`prefetch_pending` start
  them in background threads and `collect` makes the actors of those that are done, never waiting.  Surfaces are
  cached by the content of their field, so the hypotheses a streamed result sends again are not extracted again.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vtkmodules.vtkInteractionStyle  # registers the interactor styles
import vtkmodules.vtkRenderingFreeType  # text rendering
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL render window and mappers)
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersSources import vtkOutlineSource
from vtkmodules.vtkImagingColor import vtkImageMapToWindowLevelColors
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkCellPicker,
    vtkImageActor,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkTextActor,
    vtkWindowToImageFilter,
)

from ..imaging.geometry import Geometry
from .gl_preload import preload_triton
from .palette import hypothesis_rgb
from .volume_surfaces import ISO_LEVEL, SurfaceCache, field_key

FAINT_OPACITY = 0.12
SHELL_OPACITY = 0.22
SHELL_RGB = (250, 185, 80)       # warm yellow, the top of the 2D heatmap's plasma colours (high disagreement)
CURSOR_RGB = (80, 200, 255)      # the 2D views' crosshair colour
OUTLINE_RGB = (150, 150, 150)
LABEL_FONT_SIZE = 13             # pixels
BACKGROUND_TOP, BACKGROUND_BOTTOM = (0.16, 0.17, 0.21), (0.02, 0.02, 0.03)
OTHERS_MODES = ("hidden", "faint")
PLANE_MODES = ("axial", "three", "off")  # the axial plane alone hides only what lies below it
# a background surface still not made after this long (one takes 0.01-0.15 s on an idle core) is made again by
# `collect` when nothing else is left to do: its thread is starved of CPU by other processes
STARVED_AFTER_S = 0.3

# camera presets: (direction from the focal point to the camera, view up), in LPS.  Each keeps the radiological
# habit of showing the patient's right on the screen's left where it applies.
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "posterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "right": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "inferior": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),   # as the axial slices are seen: from the feet
}
DEFAULT_VIEW = "anterior"
_OBLIQUE = (-30.0, 20.0)  # degrees of azimuth and elevation added to a preset, so depth reads at a glance
FRAME_MARGIN = 0.15  # room around the lesion on each side, as a share of its largest extent
FRAME_MIN_SHARE = 0.35  # the framed region is at least this share of the ROI's side (a tiny lesion stays in context)


def _rgb(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255.0 for c in rgb)


@dataclass
class _Hypothesis:
    key: str
    actor: vtkActor | None = None  # None until extracted


class VolumeScene:
    """A renderer (and an orientation-cube renderer in the corner) on a render window, offscreen unless given one."""

    def __init__(self, render_window: vtkRenderWindow | None = None, size: tuple[int, int] = (480, 480)) -> None:
        preload_triton()  # before the first OpenGL context (see gl_preload.py)
        if render_window is None:
            render_window = vtkRenderWindow()
            render_window.SetOffScreenRendering(True)
            render_window.SetSize(*size)
        self.window = render_window
        self.window.SetNumberOfLayers(2)
        self.window.SetMultiSamples(0)
        self.renderer = vtkRenderer()
        self.renderer.GradientBackgroundOn()
        self.renderer.SetBackground(*BACKGROUND_BOTTOM)
        self.renderer.SetBackground2(*BACKGROUND_TOP)
        self.window.AddRenderer(self.renderer)
        self._build_orientation_cube()
        self.annotation = _label_actor()
        self.renderer.AddViewProp(self.annotation)

        self.cache = SurfaceCache()
        self.geometry: Geometry | None = None
        self.hypotheses: list[_Hypothesis] = []
        self._probs: np.ndarray | None = None
        self._pending: deque[int] = deque()
        self._count: np.ndarray | None = None
        self._shell_key: str | None = None
        self._shell: tuple[np.ndarray, str] | None = None  # the shell's field and key for the hypotheses shown
        self.shell_actor: vtkActor | None = None
        self.current = 0
        self.others = "hidden"
        self.shell_on = True
        self.plane_mode = "axial"
        self._window_level = (-600.0, 1500.0)  # (center, width) in HU
        self._cursor_lps: np.ndarray | None = None
        self._title = ""
        self._ct_key: tuple | None = None
        self.planes: list[vtkImageActor] = []
        self._colors: list[vtkImageMapToWindowLevelColors] = []
        self._outline: vtkActor | None = None
        self._cursor_actor: vtkActor | None = None
        self._view = DEFAULT_VIEW
        self.camera_touched = False  # set by whoever turns or zooms the camera; a new ROI clears it
        self.picker = vtkCellPicker()
        self.picker.SetTolerance(0.002)
        self.picker.PickFromListOn()

    # --- scene furniture --------------------------------------------------------------------------------------------
    def _build_orientation_cube(self) -> None:
        """A cube labelled with the patient directions (L/R, P/A, S/I of LPS) in the bottom-left corner, turning with
        the main camera."""
        cube = vtkAnnotatedCubeActor()
        for face, text in (("XPlus", "L"), ("XMinus", "R"), ("YPlus", "P"), ("YMinus", "A"), ("ZPlus", "S"),
                           ("ZMinus", "I")):
            getattr(cube, f"Set{face}FaceText")(text)
        cube.SetFaceTextScale(0.6)
        cube.GetCubeProperty().SetColor(0.25, 0.27, 0.32)
        cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
        cube.GetTextEdgesProperty().SetLineWidth(1.0)
        for axis, color in (("X", (1.0, 0.55, 0.55)), ("Y", (0.55, 1.0, 0.55)), ("Z", (0.6, 0.75, 1.0))):
            getattr(cube, f"Get{axis}PlusFaceProperty")().SetColor(*color)
            getattr(cube, f"Get{axis}MinusFaceProperty")().SetColor(*color)
        self.cube_renderer = vtkRenderer()
        self.cube_renderer.SetLayer(1)
        self.cube_renderer.SetViewport(0.0, 0.0, 0.2, 0.2)
        self.cube_renderer.InteractiveOff()
        self.cube_renderer.AddViewProp(cube)
        self.cube = cube
        self.window.AddRenderer(self.cube_renderer)
        self.renderer.AddObserver("StartEvent", lambda *_: self._sync_cube_camera())

    def _sync_cube_camera(self) -> None:
        main, cam = self.renderer.GetActiveCamera(), self.cube_renderer.GetActiveCamera()
        direction = np.array(main.GetDirectionOfProjection())
        cam.SetFocalPoint(0.0, 0.0, 0.0)
        cam.SetPosition(*(-direction * 4.2))
        cam.SetViewUp(*main.GetViewUp())
        cam.SetViewAngle(30.0)
        self.cube_renderer.ResetCameraClippingRange()

    # --- what is shown ----------------------------------------------------------------------------------------------
    def show(self, probs: np.ndarray, geometry: Geometry, count: np.ndarray | None = None,
             ct: np.ndarray | None = None, title: str = "") -> None:
        """Show hypotheses `probs` (n, D, H, W) on a ROI of patient-space `geometry`; `count` the coverage count
        (D, H, W) for the shell (computed here when not given), `ct` the ROI's HU crop (D, H, W) for the planes.

        Surfaces are only recorded here; `extract` (or `finish`) computes them.  A result on the same ROI as the one
        shown (a streamed result growing) keeps the surfaces already made, and the camera once someone has moved it
        (`camera_touched`); until then the camera frames the lesion anew, as it grows with the hypotheses."""
        probs = np.asarray(probs, np.float32)
        if probs.ndim != 4 or probs.shape[0] == 0:
            raise ValueError(f"expected hypotheses (n, D, H, W), got shape {probs.shape}")
        same_roi = self.geometry is not None and _same_geometry(self.geometry, geometry)
        self.geometry = geometry
        self._probs = probs
        self._count = count if count is not None else (probs >= ISO_LEVEL).sum(axis=0)
        self._shell = None
        self._title = title
        old = {h.key: h for h in self.hypotheses}
        self.hypotheses, self._pending = [], deque()
        for i in range(probs.shape[0]):
            key = field_key(probs[i], geometry)
            kept = old.pop(key, None)
            if kept is not None and kept.actor is not None:
                self._colour(kept.actor, i)  # same surface, maybe another index
                self.hypotheses.append(kept)
            else:
                self.hypotheses.append(_Hypothesis(key))
                self._pending.append(i)
        for gone in old.values():
            if gone.actor is not None:
                self.renderer.RemoveActor(gone.actor)
        if not same_roi:  # background surfaces of another ROI (an earlier prompt) are not waited for
            self.cache.forget_prefetches(keep=[h.key for h in self.hypotheses])
        self._shell_key = None  # the shell depends on every hypothesis: redone after them
        if not same_roi and self.shell_actor is not None:  # the old one stays meanwhile only where it belongs
            self.renderer.RemoveActor(self.shell_actor)
            self.shell_actor = None
        self.current = min(self.current, probs.shape[0] - 1) if same_roi else 0
        if ct is not None:
            self._set_ct(np.asarray(ct, np.float32), geometry)
        self._update_cursor()
        self._update_looks()
        if not same_roi:
            self.camera_touched = False
        if not self.camera_touched:
            self.reset_camera()

    def clear(self) -> None:
        """Nothing shown (no result, or a 2D one)."""
        for h in self.hypotheses:
            if h.actor is not None:
                self.renderer.RemoveActor(h.actor)
        for actor in (self.shell_actor, self._outline, self._cursor_actor, *self.planes):
            if actor is not None:
                self.renderer.RemoveViewProp(actor)
        self.hypotheses, self._pending, self.planes = [], deque(), []
        self.cache.forget_prefetches()
        self.shell_actor = self._outline = self._cursor_actor = None
        self._colors = []
        self.geometry = self._probs = self._count = self._ct_key = self._shell_key = self._shell = None
        self._title = ""
        self._update_annotation()

    @property
    def n(self) -> int:
        return len(self.hypotheses)

    @property
    def pending(self) -> int:
        """Surfaces still to extract (hypotheses, and the shell when it is on and out of date)."""
        return len(self._pending) + int(self._shell_wanted())

    def _shell_wanted(self) -> bool:
        return self.shell_on and self._probs is not None and self._shell_key is None

    def extract(self, budget_s: float | None = None, max_items: int | None = None) -> int:
        """Extract pending surfaces, the hypotheses in order and then the shell, until `budget_s` seconds are used
        or `max_items` are done (at least one); returns how many are still pending."""
        start, done = time.perf_counter(), 0
        while self.pending:
            if done and ((budget_s is not None and time.perf_counter() - start >= budget_s)
                         or (max_items is not None and done >= max_items)):
                break
            if self._pending:
                self._extract_hypothesis(self._pending.popleft())
            else:
                self._extract_shell()
            done += 1
        return self.pending

    def finish(self) -> None:
        """Extract everything pending (tests, screenshots, the benchmark)."""
        self.extract()

    # --- background extraction --------------------------------------------------------------------------------------
    def prefetch(self, probs: np.ndarray, geometry: Geometry) -> None:
        """Start extracting the surfaces of hypotheses `probs` (n, D, H, W) on `geometry` in the background, before
        they are shown (a model's batch as it arrives); `show` then finds them made."""
        probs = np.asarray(probs, np.float32)
        for values in probs:
            self.cache.prefetch(values, geometry)

    def prefetch_pending(self) -> None:
        """Start extracting every pending surface (the hypotheses and the shell) in the background."""
        for i in self._pending:
            self.cache.prefetch(self._probs[i], self.geometry, key=self.hypotheses[i].key)
        if self._shell_wanted():
            shell, key = self._shell_field()
            self.cache.prefetch(shell, self.geometry, key=key)

    def collect(self, max_items: int | None = None, budget_s: float | None = None) -> tuple[int, int]:
        """Make the actors of the pending surfaces that background threads have extracted (see `prefetch_pending`),
        without waiting for any; (surfaces still pending, actors made).  A pending surface nobody is extracting is
        started in the background.  With `budget_s`, surfaces the background threads have not started yet are then
        taken back and extracted here, in order, until that many seconds are used (at least one)."""
        start, made = time.perf_counter(), 0
        for i in list(self._pending):
            if max_items is not None and made >= max_items:
                return self.pending, made
            key = self.hypotheses[i].key
            if self.cache.ready(key):
                self._pending.remove(i)
                self._extract_hypothesis(i)
                made += 1
            elif not self.cache.prefetching(key):
                self.cache.prefetch(self._probs[i], self.geometry, key=key)
        if budget_s is not None:
            for i in list(self._pending):
                if time.perf_counter() - start >= budget_s or (max_items is not None and made >= max_items):
                    break
                if self.cache.take_back(self.hypotheses[i].key):
                    self._pending.remove(i)
                    self._extract_hypothesis(i)
                    made += 1
            starved = [i for i in self._pending if self._starved(self.hypotheses[i].key)]
            if not made and starved and (max_items is None or max_items > 0):
                # all that is left is being extracted in the background, by a thread that other processes starve
                # (it runs at a lower priority): rather than wait idle for it, make the surface here as well
                self._pending.remove(starved[0])
                self.cache.abandon(self.hypotheses[starved[0]].key)
                self._extract_hypothesis(starved[0])
                made += 1
        if self._shell_wanted() and (max_items is None or made < max_items):
            shell, key = self._shell_field()
            if self.cache.ready(key):
                self._extract_shell()
                made += 1
            elif budget_s is not None and not made and not self._pending and self._starved(key):
                self.cache.abandon(key)  # the last surface, starved in the background: made here as well
                self._extract_shell()
                made += 1
            elif not self.cache.prefetching(key):
                self.cache.prefetch(shell, self.geometry, key=key)
        return self.pending, made

    def _extract_hypothesis(self, i: int) -> None:
        h = self.hypotheses[i]
        surface = self.cache.surface(self._probs[i], self.geometry, key=h.key)
        h.actor = _surface_actor(surface)
        self._colour(h.actor, i)
        self.renderer.AddActor(h.actor)
        self._look(i)

    def _starved(self, key: str) -> bool:
        running = self.cache.running_for(key)
        return running is not None and running >= STARVED_AFTER_S

    def _shell_field(self) -> tuple[np.ndarray, str]:
        """The disagreement shell's field (1 where some but not all hypotheses cover) and its key, made once per
        `show` (`collect` asks for it at every poll while surfaces are pending)."""
        if self._shell is None:
            n = self._probs.shape[0]
            shell = ((self._count > 0) & (self._count < n)).astype(np.float32)
            self._shell = shell, field_key(shell, self.geometry)
        return self._shell

    def _extract_shell(self) -> None:
        shell, key = self._shell_field()
        surface = self.cache.surface(shell, self.geometry, key=key)
        if self.shell_actor is not None:
            self.renderer.RemoveActor(self.shell_actor)
        self.shell_actor = _surface_actor(surface)
        # where every hypothesis shares the boundary, the shell lies on the current surface: pushed back a little
        # in depth, it leaves that surface clean there instead of mottling it (z-fighting)
        mapper = self.shell_actor.GetMapper()
        mapper.SetResolveCoincidentTopologyToPolygonOffset()
        mapper.SetRelativeCoincidentTopologyPolygonOffsetParameters(2.0, 4.0)
        prop = self.shell_actor.GetProperty()
        prop.SetColor(*_rgb(SHELL_RGB))
        prop.SetOpacity(SHELL_OPACITY)
        prop.SetSpecular(0.0)
        self.shell_actor.SetPickable(False)
        self.renderer.AddActor(self.shell_actor)
        self._shell_key = key

    # --- options ----------------------------------------------------------------------------------------------------
    def set_current(self, index: int) -> None:
        """The hypothesis the slider shows: opaque; the others faint or hidden."""
        if self.n:
            self.current = int(index) % self.n
        self._update_looks()

    def set_others(self, mode: str) -> None:
        if mode not in OTHERS_MODES:
            raise ValueError(f"others must be one of {', '.join(OTHERS_MODES)}, not {mode!r}")
        self.others = mode
        self._update_looks()

    def set_shell(self, on: bool) -> None:
        self.shell_on = bool(on)
        self._update_looks()

    def set_planes(self, mode: str) -> None:
        """Which CT planes through the cursor are drawn: 'axial', 'three' or 'off'."""
        if mode not in PLANE_MODES:
            raise ValueError(f"planes must be one of {', '.join(PLANE_MODES)}, not {mode!r}")
        self.plane_mode = mode
        self._plane_visibility()

    def _plane_visibility(self) -> None:
        shown = {"axial": (True, False, False), "three": (True, True, True), "off": (False, False, False)}
        for plane, visible in zip(self.planes, shown[self.plane_mode]):
            plane.SetVisibility(visible)

    def set_window(self, center: float, width: float) -> None:
        """Window/level of the CT planes in HU (the 2D views' window)."""
        self._window_level = (float(center), max(float(width), 1.0))
        for colors in self._colors:
            colors.SetLevel(self._window_level[0])
            colors.SetWindow(self._window_level[1])

    def set_cursor(self, lps) -> None:
        """The 2D views' crosshair position in LPS mm (None: no cursor)."""
        self._cursor_lps = None if lps is None else np.asarray(lps, np.float64).reshape(3)
        self._update_cursor()

    def _colour(self, actor: vtkActor, i: int) -> None:
        actor.GetProperty().SetColor(*_rgb(hypothesis_rgb(i)))

    def _look(self, i: int) -> None:
        actor = self.hypotheses[i].actor
        if actor is None:
            return
        current = i == self.current
        actor.SetVisibility(current or self.others == "faint")
        actor.GetProperty().SetOpacity(1.0 if current else FAINT_OPACITY)
        actor.SetPickable(current or self.others == "faint")

    def _update_looks(self) -> None:
        for i in range(self.n):
            self._look(i)
        if self.shell_actor is not None:
            self.shell_actor.SetVisibility(self.shell_on)
        self._update_annotation()

    def _update_annotation(self) -> None:
        head = f"Hypothesis {self.current + 1} / {self.n}" if self.n else ""
        if head and self._pending:
            head += f"   (surfaces: {self.n - len(self._pending)} of {self.n})"
        text = "\n".join(t for t in (head, self._title) if t)
        if text != self.annotation.GetInput():  # a changed text is laid out again: only then
            self.annotation.SetInput(text)

    # --- CT planes, outline, cursor ---------------------------------------------------------------------------------
    def _set_ct(self, ct: np.ndarray, geometry: Geometry) -> None:
        key = (ct.shape, field_key(ct, geometry))
        if key == self._ct_key:
            return
        self._ct_key = key
        for actor in (*self.planes, self._outline):
            if actor is not None:
                self.renderer.RemoveViewProp(actor)
        image = vtkImageData()
        image.SetDimensions(ct.shape[2], ct.shape[1], ct.shape[0])
        image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(ct).ravel(), deep=True))
        matrix = _matrix(geometry.affine())
        self.planes, self._colors = [], []
        for _ in range(3):  # a filter per plane: each plane asks its filter for its own slice extent only
            colors = vtkImageMapToWindowLevelColors()
            colors.SetInputData(image)
            colors.SetOutputFormatToLuminance()
            self._colors.append(colors)
            plane = vtkImageActor()
            plane.GetMapper().SetInputConnection(colors.GetOutputPort())
            plane.InterpolateOn()
            plane.SetUserMatrix(matrix)
            plane.SetPickable(False)
            self.renderer.AddViewProp(plane)
            self.planes.append(plane)
        self._plane_visibility()
        outline = vtkOutlineSource()
        d, h, w = ct.shape
        outline.SetBounds(-0.5, w - 0.5, -0.5, h - 0.5, -0.5, d - 0.5)  # the ROI's outer edges, in index space
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(outline.GetOutputPort())
        self._outline = vtkActor()
        self._outline.SetMapper(mapper)
        self._outline.SetUserMatrix(matrix)
        self._outline.GetProperty().SetColor(*_rgb(OUTLINE_RGB))
        self._outline.SetPickable(False)
        self.renderer.AddActor(self._outline)
        self.set_window(*self._window_level)

    def cursor_index(self) -> tuple[int, int, int] | None:
        """The ROI-grid voxel (d, r, c) the planes pass through: the cursor's, clamped into the ROI."""
        if self.geometry is None:
            return None
        shape = self.geometry.shape
        if self._cursor_lps is None:
            return tuple(s // 2 for s in shape)
        zyx = self.geometry.patient_to_voxel(self._cursor_lps)
        return tuple(int(min(max(round(float(v)), 0), s - 1)) for v, s in zip(zyx, shape))

    def cursor_inside(self) -> bool:
        if self.geometry is None or self._cursor_lps is None:
            return False
        zyx = self.geometry.patient_to_voxel(self._cursor_lps)
        return all(-0.5 <= float(v) <= s - 0.5 for v, s in zip(zyx, self.geometry.shape))

    def _update_cursor(self) -> None:
        index = self.cursor_index()
        if index is None:
            return
        d, r, c = index
        depth, height, width = self.geometry.shape
        if len(self.planes) == 3:
            self.planes[0].SetDisplayExtent(0, width - 1, 0, height - 1, d, d)       # axial
            self.planes[1].SetDisplayExtent(0, width - 1, r, r, 0, depth - 1)        # coronal
            self.planes[2].SetDisplayExtent(c, c, 0, height - 1, 0, depth - 1)       # sagittal
        if self._cursor_actor is not None:
            self.renderer.RemoveActor(self._cursor_actor)
            self._cursor_actor = None
        if self.cursor_inside():
            self._cursor_actor = _cross_actor(self.geometry.patient_to_voxel(self._cursor_lps), self.geometry)
            self.renderer.AddActor(self._cursor_actor)

    # --- camera -----------------------------------------------------------------------------------------------------
    def set_view(self, name: str) -> None:
        """Look at the ROI from a patient direction (a key of VIEWS), turned slightly for depth."""
        if name not in VIEWS:
            raise ValueError(f"unknown view {name!r}; choose from {', '.join(VIEWS)}")
        self._view = name
        self.reset_camera()

    def reset_camera(self) -> None:
        """Frame the lesion (the voxels any hypothesis covers, with room around it; the whole ROI when none does),
        seen from the current view direction."""
        if self.geometry is None:
            return
        lo, hi = self._frame_box()
        corners = np.array([[z, y, x] for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])])
        lps = self.geometry.voxel_to_patient(corners)
        centre = lps.mean(axis=0)
        towards, up = VIEWS[self._view]
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + np.asarray(towards) * 100.0))
        camera.SetViewUp(*up)
        camera.Azimuth(_OBLIQUE[0])
        camera.Elevation(_OBLIQUE[1])
        camera.OrthogonalizeViewUp()
        low, high = lps.min(axis=0), lps.max(axis=0)
        self.renderer.ResetCamera(low[0], high[0], low[1], high[1], low[2], high[2])
        camera.Zoom(1.4)  # ResetCamera fits the box's circumscribed sphere, which leaves a cube small on screen
        self.renderer.ResetCameraClippingRange()

    def _frame_box(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) ROI-grid corners (z, y, x) of what the camera frames."""
        shape = np.array(self.geometry.shape, float)
        low, high = np.full(3, -0.5), shape - 0.5
        if self._count is not None and self._count.any():
            spacing = np.array(self.geometry.spacing)
            inside = [np.flatnonzero(self._count.any(axis=tuple(a for a in range(3) if a != axis)))
                      for axis in range(3)]
            first = np.array([v[0] for v in inside], float) - 0.5
            last = np.array([v[-1] for v in inside], float) + 0.5
            side = max(np.max((last - first) * spacing) * (1 + 2 * FRAME_MARGIN),
                       FRAME_MIN_SHARE * min(shape[1] * spacing[1], shape[2] * spacing[2]))  # mm
            centre = (first + last) / 2
            half = side / 2 / spacing  # the same mm on every axis
            low, high = np.maximum(centre - half, low), np.minimum(centre + half, high)
        return low, high

    # --- rendering, pictures, picking -------------------------------------------------------------------------------
    def render(self) -> None:
        self._update_annotation()
        self.window.Render()

    def image(self) -> np.ndarray:
        """The rendered picture as (height, width, 3) uint8, top row first (renders first)."""
        self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.ShouldRerenderOff()
        grab.Update()
        out = grab.GetOutput()
        w, h, _ = out.GetDimensions()
        pixels = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def write_png(self, path: Path) -> Path:
        """Render and write the picture as PNG at `path` (the caller chooses the folder and makes it atomic)."""
        self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.ShouldRerenderOff()
        writer = vtkPNGWriter()
        writer.SetFileName(str(path))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
        if writer.GetErrorCode():
            raise OSError(f"could not write PNG {path}")
        return Path(path)

    def pick(self, x: float, y: float) -> np.ndarray | None:
        """The LPS point of the visible hypothesis surface under display position (x, y) (VTK pixels, origin at the
        bottom left), or None where there is none."""
        self.picker.InitializePickList()
        for h in self.hypotheses:
            if h.actor is not None and h.actor.GetVisibility():
                self.picker.AddPickList(h.actor)
        if not self.picker.Pick(float(x), float(y), 0.0, self.renderer):
            return None
        return np.array(self.picker.GetPickPosition())

    def display_position(self, lps) -> tuple[float, float]:
        """Display (x, y) of an LPS point (VTK pixels, origin at the bottom left); for tests."""
        self.renderer.SetWorldPoint(*np.asarray(lps, float), 1.0)
        self.renderer.WorldToDisplay()
        x, y, _ = self.renderer.GetDisplayPoint()
        return x, y

    def surface_actors(self) -> list[vtkActor]:
        """One actor per extracted hypothesis surface, in hypothesis order."""
        return [h.actor for h in self.hypotheses if h.actor is not None]


def _same_geometry(a: Geometry, b: Geometry) -> bool:
    return (a.shape == b.shape and np.array_equal(a.slice_origins, b.slice_origins)
            and np.array_equal(a.row_cosine, b.row_cosine) and np.array_equal(a.col_cosine, b.col_cosine)
            and a.pixel_spacing == b.pixel_spacing)


def _matrix(affine: np.ndarray) -> vtkMatrix4x4:
    matrix = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(affine[r, c]))
    return matrix


def _surface_actor(surface: vtkPolyData) -> vtkActor:
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(surface)
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetSpecular(0.25)
    prop.SetSpecularPower(20.0)
    prop.SetDiffuse(0.85)
    prop.SetAmbient(0.12)
    return actor


def _label_actor() -> vtkTextActor:
    """The text in the top-left corner (hypothesis shown, model): a fixed, legible size whatever the view's size."""
    label = vtkTextActor()
    label.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    label.SetPosition(0.015, 0.985)
    prop = label.GetTextProperty()
    prop.SetFontSize(LABEL_FONT_SIZE)
    prop.SetColor(0.88, 0.88, 0.88)
    prop.SetVerticalJustificationToTop()
    prop.SetShadow(True)
    return label


def _cross_actor(zyx: np.ndarray, geometry: Geometry) -> vtkActor:
    """Three short lines through a ROI-grid position, along the ROI's axes (3 voxels of the finest spacing each
    way), in the crosshair colour."""
    step = 3.0 * min(geometry.spacing) / np.array(geometry.spacing)
    ends = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            p = np.array(zyx, float)
            p[axis] += sign * step[axis]
            ends.append(p)
    lps = geometry.voxel_to_patient(np.array(ends))
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(lps), deep=True))
    lines = vtkCellArray()
    for k in range(3):
        lines.InsertNextCell(2, [2 * k, 2 * k + 1])
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetLines(lines)
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*_rgb(CURSOR_RGB))
    actor.GetProperty().SetLineWidth(3.0)
    actor.GetProperty().LightingOff()
    actor.SetPickable(False)
    return actor
