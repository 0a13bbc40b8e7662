// IDVideo frontend extension (ComfyUI frontend 1.27 API).
//
// * IDVideo Video Combiner: the video plays inside the node. The node returns `ui.images` entries with `animated`
//   and a `format` MIME (like core SaveVideo). Frontend 1.27 turns those into its own <video> player, so this
//   extension only adds a looping, muted <video> (a DOM widget on /view?filename=&subfolder=&type=) when the
//   frontend shows none: never a double preview.
// * IDVideo Face Loader: the node returns its aligned crops as temp `ui.images` (like core PreviewImage), which the
//   core frontend draws; this extension adds the number of faces found to the node title.
// * IDVideo Identity Score: the core frontend draws its plot (`ui.images`); this extension puts the headline
//   scores (and, for several videos, which one was best) in the node title.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const EXT = "IDVideo.Preview";
const VIDEO_WIDGET = "idv_video";

window.__idvideo = { loaded: true, videos: 0, coreVideo: 0 };

function viewUrl(entry) {
  const params = new URLSearchParams({
    filename: entry.filename,
    subfolder: entry.subfolder ?? "",
    type: entry.type ?? "output",
  });
  return api.apiURL(`/view?${params.toString()}`) + (app.getRandParam ? app.getRandParam() : "");
}

function isVideoEntry(entry) {
  const mime = String(entry?.format ?? "");
  return mime.startsWith("video/") || /\.(mp4|webm|mkv|mov)$/i.test(String(entry?.filename ?? ""));
}

function coreShowsVideo(node) {
  // Frontend 1.27 (useNodeVideo): on the next draw after an `animated` non-image output it sets
  // node.previewMediaType = "video" and adds a "video-preview" DOM widget holding node.videoContainer.
  if (node.videoContainer || node.previewMediaType === "video") return true;
  return (node.widgets ?? []).some((w) => w.name === "video-preview");
}

function removeOwnVideo(node) {
  const i = (node.widgets ?? []).findIndex((w) => w.name === VIDEO_WIDGET);
  if (i >= 0) {
    const w = node.widgets[i];
    w.onRemove?.();
    node.widgets.splice(i, 1);
  }
}

function showVideo(node, entry) {
  const src = viewUrl(entry);
  node.__idvVideoSrc = src;
  let widget = (node.widgets ?? []).find((w) => w.name === VIDEO_WIDGET);
  if (!widget) {
    const video = document.createElement("video");
    Object.assign(video, { controls: true, loop: true, muted: true, autoplay: true, playsInline: true });
    video.style.width = "100%";
    video.style.maxHeight = "100%";
    video.addEventListener("loadedmetadata", () => {
      // grow the node so the whole video fits under the widgets
      const ratio = video.videoHeight / Math.max(video.videoWidth, 1);
      widget.aspectRatio = ratio;
      node.setSize([node.size[0], node.computeSize([node.size[0], 0])[1]]);
      app.graph.setDirtyCanvas(true, true);
    });
    widget = node.addDOMWidget(VIDEO_WIDGET, "video", video, {
      serialize: false,
      hideOnZoom: false,
      getValue: () => undefined,
      setValue: () => {},
    });
    widget.computeSize = (width) => [width, (widget.aspectRatio ?? 0.6) * width + 10];
    widget.video = video;
  }
  if (entry.format) widget.video.setAttribute("type", entry.format);
  widget.video.src = src;
  window.__idvideo.videos += 1;
}

app.registerExtension({
  name: EXT,
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name === "IDVideoCombine") {
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const result = onExecuted?.apply(this, arguments);
        const entry = (message?.images ?? []).find(isVideoEntry);
        if (!entry) return result;
        // Checked in the browser (tests/comfyui/test_browser.py): frontend 1.27 already plays `animated` video
        // outputs itself. Give it up to 3 s (it builds the player on its next draw); only an older/other frontend
        // that shows nothing gets our player, so there is never a double preview.
        const started = performance.now();
        const decide = () => {
          if (coreShowsVideo(this)) {
            removeOwnVideo(this);
            window.__idvideo.coreVideo += 1;
          } else if (performance.now() - started < 3000) {
            setTimeout(decide, 200);
          } else {
            showVideo(this, entry);
          }
        };
        setTimeout(decide, 0);
        return result;
      };
      const onDrawForeground = nodeType.prototype.onDrawForeground;
      nodeType.prototype.onDrawForeground = function () {
        // the core player may appear later (node was off-screen): then ours goes
        if (this.__idvVideoSrc && coreShowsVideo(this)) {
          removeOwnVideo(this);
          this.__idvVideoSrc = undefined;
        }
        return onDrawForeground?.apply(this, arguments);
      };
    }
    if (nodeData?.name === "IDVIdentityScore") {
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const result = onExecuted?.apply(this, arguments);
        const s = message?.idv_score?.[0];
        if (s && typeof s.title === "string") {
          const base = this.__idvBaseTitle ?? (this.__idvBaseTitle = this.title);
          this.title = `${base} (${s.title})`;
          this.setDirtyCanvas?.(true, true);
        }
        return result;
      };
    }
    if (nodeData?.name === "IDVFaceLoader") {
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const result = onExecuted?.apply(this, arguments);
        const count = message?.idv_faces?.[0]?.count;
        if (typeof count === "number") {
          this.__idvFaces = count;
          const base = this.__idvBaseTitle ?? (this.__idvBaseTitle = this.title);
          this.title = `${base} (${count} face${count === 1 ? "" : "s"})`;
          this.setDirtyCanvas?.(true, true);
        }
        return result;
      };
    }
  },
});
