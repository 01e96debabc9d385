"""
Signal processing shared by training and the runtime (numpy / scipy / cv2 only).

Functions are keyword-only where a parameter could be confused (``sample_rate``,
``hop_length``), work on numpy arrays, and never normalise relative to a whole clip,
so streamed chunks give the same features as the full signal.
"""
