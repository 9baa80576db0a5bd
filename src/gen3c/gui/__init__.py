"""The browser GUI: ``gen3c gui``.

:mod:`gen3c.gui.state` holds the GUI's logic as plain Python (sources, settings, keyframes and
their spline, camera-file import/export, frame renders of the cache, one generation job at a
time); :mod:`gen3c.gui.app` is the viser layout and callbacks over it. Every action calls the
same library functions as the CLI (:func:`gen3c.pipelines.request.run_request` and friends).
"""
