// IDVideo frontend extension (ComfyUI frontend 1.27 API).
//
// * IDVideo Video Combiner: the video plays inside the node. The node returns `ui.images` entries with `animated`
//   and a `format` MIME (like core SaveVideo). Frontend 1.27 turns those into its own <video> player, so this
//   extension only adds a looping, muted <video> (a DOM widget on /view?filename=&subfolder=&type=) when the
//   frontend shows none: never a double preview.
// * IDVideo Face Loader: the node returns its aligned crops as temp `ui.images` (like core PreviewImage), which the
//   core frontend draws; this extension adds the number of faces found to the node title.
// * Warnings on the node (issue 14): every warning the pack logs while a node runs arrives as an `idvideo.warnings`
//   server message {node, warnings} (and in `ui.idv_warnings` of nodes that return a ui). The node shows them in a
//   yellow box until it runs again; a cached node keeps the warnings of the run that made its output.
// * IDVideo Identity Score: the core frontend draws its plot (`ui.images`); this extension puts the headline
//   scores (and, for several videos, which one was best) in the node title.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const EXT = "IDVideo.Preview";
const VIDEO_WIDGET = "idv_video";

window.__idvideo = { loaded: true, videos: 0, coreVideo: 0, warnings: {} };

const WARN_WIDGET = "idv_warnings";

function findNode(id) {
  const graph = app.graph;
  if (!graph) return null;
  const key = String(id);
  return graph.getNodeById?.(Number(key)) ?? graph.getNodeById?.(key) ?? null;
}

function showWarnings(node, warnings) {
  if (!node) return;
  const list = (warnings ?? []).map(String);
  window.__idvideo.warnings[String(node.id)] = list;
  let widget = (node.widgets ?? []).find((w) => w.name === WARN_WIDGET);
  if (!list.length) {
    if (widget) {
      widget.element.style.display = "none";
      widget.element.replaceChildren();
      widget.__lines = 0;
      node.setSize?.([node.size[0], node.computeSize?.([node.size[0], 0])?.[1] ?? node.size[1]]);
      node.setDirtyCanvas?.(true, true);
    }
    return;
  }
  if (!widget) {
    const box = document.createElement("div");
    Object.assign(box.style, {
      background: "rgba(120, 90, 0, 0.35)", border: "1px solid #d6a400", borderRadius: "4px", color: "#ffd54a",
      font: "11px sans-serif", padding: "3px 5px", overflowY: "auto", whiteSpace: "normal",
    });
    box.className = "idv-warnings";
    widget = node.addDOMWidget(WARN_WIDGET, "idv-warnings", box, {
      serialize: false, hideOnZoom: false, getValue: () => undefined, setValue: () => {},
    });
    widget.computeSize = (width) => [width, widget.element.style.display === "none" ? 0 : 16 + 15 * (widget.__lines ?? 1)];
  }
  const box = widget.element;
  box.replaceChildren(...list.map((text) => {
    const line = document.createElement("div");
    line.textContent = `⚠ ${text}`;
    return line;
  }));
  box.title = list.join("\n");
  box.style.display = "";
  widget.__lines = Math.min(6, list.reduce((n, t) => n + Math.ceil(t.length / 60), 0));
  node.setSize?.([node.size[0], Math.max(node.size[1], node.computeSize?.([node.size[0], 0])?.[1] ?? 0)]);
  node.setDirtyCanvas?.(true, true);
}

api.addEventListener("idvideo.warnings", (event) => {
  const detail = event?.detail ?? {};
  showWarnings(findNode(detail.node), detail.warnings);
});

api.addEventListener("executing", (event) => {
  // a node that runs again starts without warnings (the new ones arrive while it runs)
  const detail = event?.detail;
  const id = typeof detail === "object" && detail !== null ? detail.node : detail;
  if (id === null || id === undefined) return;
  const node = findNode(id);
  if (node && window.__idvideo.warnings[String(node.id)]?.length) showWarnings(node, []);
});

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

// IDVideo Wan Model Loader: the `dit` list shows only the files the chosen `family` can load. The server reads each
// file's keys (cached) and sends {file: [family labels]} in the dit input's options as `idv_families`.
function filterDitByFamily(node, spec, keepValue) {
  const fam = node.widgets?.find((w) => w.name === "family");
  const dit = node.widgets?.find((w) => w.name === "dit");
  if (!fam || !dit || !spec) return;
  const allowed = spec.all.filter((name) => (spec.families[name] ?? [fam.value]).includes(fam.value));
  dit.options.values = allowed;
  window.__idvideo.ditChoices = allowed.slice();
  if (!keepValue && !allowed.includes(dit.value)) {
    dit.value = allowed.find((n) => !n.startsWith("(")) ?? allowed[0];
  }
  node.setDirtyCanvas?.(true, true);
}

function ditSpec(nodeData) {
  const dit = nodeData?.input?.required?.dit;
  if (!dit) return null;
  const opts = dit[1] ?? {};
  const all = Array.isArray(dit[0]) ? dit[0] : (opts.options ?? []);
  return { all: [...all], families: opts.idv_families ?? {} };
}

app.registerExtension({
  name: EXT,
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name === "IDVWanModelLoader") {
      const spec = ditSpec(nodeData);
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function () {
        const result = onNodeCreated?.apply(this, arguments);
        const fam = this.widgets?.find((w) => w.name === "family");
        if (fam) {
          const callback = fam.callback;
          fam.callback = (...args) => {
            const r = callback?.apply(fam, args);
            filterDitByFamily(this, spec, false);
            return r;
          };
        }
        filterDitByFamily(this, spec, true);
        return result;
      };
      const onConfigure = nodeType.prototype.onConfigure;
      nodeType.prototype.onConfigure = function () {
        const result = onConfigure?.apply(this, arguments);
        filterDitByFamily(this, spec, true);   // a saved workflow keeps its choice (the server checks it)
        return result;
      };
    }
    if (String(nodeData?.category ?? "").startsWith("IDVideo")) {
      const onExecutedWarn = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const result = onExecutedWarn?.apply(this, arguments);
        if (Array.isArray(message?.idv_warnings)) showWarnings(this, message.idv_warnings);
        return result;
      };
    }
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
