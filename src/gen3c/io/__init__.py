"""Reading and writing what users hand us and what we hand back: images, depth, cameras,
videos and point clouds. Every writer is atomic (temp file, then rename)."""
