// Drives web/js/idvideo.js in Node with stand-ins for the ComfyUI frontend's `app` / `api` and a minimal DOM, to check
// the extension's own logic (warnings box, dit filter). tests/test_js_extension.py copies the file next to the stub
// modules (the import paths of the real frontend) and runs this script; it prints one JSON line of results.
import { pathToFileURL } from "node:url";
import path from "node:path";

const root = process.argv[2];

class El {
  constructor(tag) { this.tag = tag; this.style = {}; this.children = []; this.textContent = ""; this.attrs = {}; }
  replaceChildren(...kids) { this.children = kids; this.textContent = kids.map((k) => k.textContent).join("\n"); }
  setAttribute(k, v) { this.attrs[k] = v; }
  addEventListener() {}
}
globalThis.window = globalThis;
globalThis.document = { createElement: (tag) => new El(tag), querySelectorAll: () => [] };

const { app, api, nodes } = await import(pathToFileURL(path.join(root, "scripts", "app.js")));
await import(pathToFileURL(path.join(root, "extensions", "IDVideo", "idvideo.js")));
const ext = app.extensions[0];

function makeNodeType() {
  return class { };
}
function makeNode(id, widgets) {
  const node = {
    id, size: [300, 200], widgets,
    addDOMWidget(name, type, element) { const w = { name, type, element }; this.widgets.push(w); return w; },
    setSize(s) { this.size = s; }, computeSize() { return [this.size[0], 100]; }, setDirtyCanvas() {},
  };
  nodes[id] = node;
  return node;
}

const out = {};
// ---- warnings on any IDVideo node (server message, then cleared when the node runs again)
const SamplerType = makeNodeType();
await ext.beforeRegisterNodeDef(SamplerType, { name: "IDVSampler", category: "IDVideo/sampling", input: {} });
const sampler = Object.assign(new SamplerType(), makeNode(9, []));
api.emit("executing", { node: "9" });
api.emit("idvideo.warnings", { node: "9", warnings: ["7 frames is not 4k+1; using 5 frames."] });
const box = sampler.widgets.find((w) => w.name === "idv_warnings");
out.shown = box ? box.element.textContent : null;
out.visible = box ? box.element.style.display !== "none" : false;
api.emit("executing", { node: "9" });
out.afterRerun = box.element.style.display === "none" && box.element.textContent === "";
// ui output path (nodes that return a ui)
SamplerType.prototype.onExecuted.call(sampler, { idv_warnings: ["from ui"] });
out.fromUi = box.element.textContent;
// ---- dit list follows the family
const LoaderType = makeNodeType();
const all = ["(from base folder)", "first_stage.pt", "second_stage_adaln.pt", "Phantom-Wan-1.3B.pth"];
const fams = { "(from base folder)": ["Concat-ID-Wan", "Phantom-Wan"], "first_stage.pt": ["Concat-ID-Wan", "Phantom-Wan"],
  "second_stage_adaln.pt": ["Concat-ID-Wan"], "Phantom-Wan-1.3B.pth": ["Concat-ID-Wan", "Phantom-Wan"] };
await ext.beforeRegisterNodeDef(LoaderType, { name: "IDVWanModelLoader", category: "IDVideo/loaders",
  input: { required: { dit: [all, { default: "second_stage_adaln.pt", idv_families: fams }] } } });
const family = { name: "family", value: "Concat-ID-Wan" };
const dit = { name: "dit", value: "second_stage_adaln.pt", options: { values: all.slice() } };
const loader = Object.assign(new LoaderType(), makeNode(5, [family, dit]));
LoaderType.prototype.onNodeCreated.call(loader);
out.concatList = dit.options.values.slice();
family.value = "Phantom-Wan";
family.callback(family.value);
out.phantomList = dit.options.values.slice();
out.phantomValue = dit.value;
console.log(JSON.stringify(out));
