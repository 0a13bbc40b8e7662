"""Did the identity survive? Identity scores for generated videos (issue 12).

- :mod:`.protocols` the OpenS2V-Eval (default) and ConsisID face-similarity protocols as data.
- :mod:`.models` finds and loads the scoring models: buffalo_l (FaceSim-Arc; antelopev2 only as a labelled
  fallback), CurricularFace IR-101 (FaceSim-Cur, optional), a transformers CLIP folder (CLIPScore, optional).
- :mod:`.curricularface` our IR-101 definition of ``glint360k_curricular_face_r101_backbone.bin``.
- :mod:`.score` per identity and per frame scores, one-to-one assignment for several people, missing frames.
- :mod:`.plot` the per-frame plot and the best-of-N contact sheet (Pillow).
- :mod:`.graph` what the "IDVideo Identity Score" node computes; :mod:`.cli` the ``score`` command and
  ``generate --seeds``; :mod:`.seeds` seed lists.

Nothing here imports ComfyUI; the face detection and ArcFace crop are the pack's own (:mod:`idvideo_core.faces`).
"""
