"""Face analysis for identity conditioning: detection, recognition, alignment, parsing, EVA-CLIP features.

Split by concern so each file reads in one sitting:

- :mod:`.onnx_session` ONNX Runtime sessions with a provider choice and a logged CPU fallback.
- :mod:`.scrfd`, :mod:`.arcface` the antelopev2 detector and recogniser over ONNX Runtime (our own decode, so the
  pack works the same with insightface 0.7.3, 2.x, or no insightface at all).
- :mod:`.facexlib_nets` RetinaFace-R50 and BiSeNet built from facexlib's classes, weights loaded safely.
- :mod:`.locate` where each face model file is searched for; :mod:`.models` loads them all (``FaceModels``).
- :mod:`.select` the one face-selection rule; :mod:`.align` FFHQ alignment and background whitening;
  :mod:`.analyze` image → :class:`~idvideo_core.types.DetectedFace`; :mod:`.identity` → ``LocalIdentity``;
  :mod:`.kps` the key-point image.
- :mod:`.eva_clip` the EVA02-CLIP-L-14-336 vision tower in plain torch (``load_eva_clip``).

Nothing here is imported eagerly: the heavy dependencies (onnxruntime, facexlib) load only when used.
"""
