/* nst studio: the page's behaviour. Plain JavaScript, no build step, no dependencies.
 *
 * Everything the server or the user wrote is put into the page with textContent or
 * as an attribute value, never as HTML. Every request carries the page's ?token=
 * (Authorization header for fetch; ?token= for EventSource and image URLs).
 * The server owns every check and default (docs/studio.md): the page sends what the
 * user changed and shows the server's one-line message when something is refused.
 */
"use strict";

(function () {
  // ── basics ────────────────────────────────────────────────────────────────
  const $ = (id) => document.getElementById(id);
  const TOKEN = new URLSearchParams(location.search).get("token");
  const CONV_BLOCKS = [2, 2, 4, 4, 4];
  const TERMS = ["total", "content", "style", "tv"];
  const ACTIVE = new Set(["queued", "running"]);
  const LIVE_RENDER_MS = 500;
  const FRAME_WAIT_MS = 400;
  const DONE = new Set(["finished", "failed", "stopped", "interrupted"]);
  const TASK_NOTES = {
    transfer: "Paint the content image in the style of the style images.",
    reconstruct: "Rebuild the content image from one layer's features: what a layer keeps.",
    texture: "Synthesize a texture from the style images alone.",
  };
  const SWEEP_VALUES = {
    alpha: "0, 0.25, 0.5, 0.75, 1",
    content_weight: "1, 10, 100, 1000, 10000",
    style_weight: "1e4, 1e5, 1e6, 1e7",
    tv_weight: "0, 1e-4, 1e-3, 1e-2",
    seed: "1, 2, 3, 4",
    init: "content, noise, blend",
    content_layers: "conv_2, conv_4, conv_7, conv_10, conv_13",
    style_layers: "conv_1, conv_1-conv_3, conv_1-conv_5, conv_1-conv_8",
    preserve_color: "luminance, histogram",
    size: "128, 256, 384",
    steps: "50, 100, 200",
  };
  const NUMERIC = new Set(["alpha", "content_weight", "style_weight", "tv_weight", "seed", "size", "steps",
    "scales", "learning_rate"]);

  class StudioError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status || 0;
    }
  }

  function withToken(url) {
    if (!TOKEN) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
  }

  // Seeds run up to 2**64-1, past JavaScript's exact integers: keep big ones as text.
  function parseJSON(text) {
    return JSON.parse(text, function (key, value, context) {
      if (key === "seed" && typeof value === "number" && !Number.isSafeInteger(value) &&
          context && typeof context.source === "string" && /^\d+$/.test(context.source)) {
        return context.source;
      }
      return value;
    });
  }

  function toJSON(body) {
    // A seed travels as a digit string inside the page; on the wire it is a number.
    return JSON.stringify(body).replace(/"seed":"(\d+)"/g, '"seed":$1');
  }

  async function request(path, options) {
    const opts = options || {};
    const headers = Object.assign({}, opts.headers || {});
    if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
    let body = opts.body;
    if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      body = toJSON(body);
    }
    let response;
    try {
      response = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store" });
    } catch (error) {
      throw new StudioError("the studio server cannot be reached: is nst serve still running?");
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`.trim();
      try {
        const data = parseJSON(await response.text());
        if (data && typeof data.error === "string") message = data.error;
        else if (data && typeof data.detail === "string") message = data.detail;
      } catch (error) { /* not JSON: keep the status line */ }
      if (response.status === 401 && !TOKEN) {
        message += " (this studio needs its token: open the address nst serve printed, with ?token=…)";
      }
      throw new StudioError(message, response.status);
    }
    if (opts.raw) return response;
    const text = await response.text();
    return text ? parseJSON(text) : null;
  }

  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "text") node.textContent = String(value);
        else if (key === "class") node.className = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function listOf(data, key) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data[key])) return data[key];
    return [];
  }

  function fmtNumber(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
    if (value === 0) return "0";
    const magnitude = Math.abs(value);
    if (magnitude >= 1e4 || magnitude < 1e-2) {
      const [mantissa, exponent] = value.toExponential(2).split("e");
      const short = String(Number(mantissa));
      return `${short === "1" ? "1" : short}e${Number(exponent)}`;
    }
    return String(Number(value.toPrecision(3)));
  }

  function fmtDuration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "–";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
    return `${Math.floor(seconds / 3600)} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")} min`;
  }

  function fmtWhen(created) {
    if (created === undefined || created === null || created === "") return "";
    let date;
    if (typeof created === "number") date = new Date(created < 1e12 ? created * 1000 : created);
    else date = new Date(created);
    if (Number.isNaN(date.getTime())) return String(created);
    const today = new Date();
    const sameDay = date.toDateString() === today.toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  // ── messages ──────────────────────────────────────────────────────────────
  let messageTimer = null;
  function showMessage(text, kind) {
    $("message-text").textContent = String(text);
    $("message").dataset.kind = kind || "error";
    $("message").querySelector(".message-icon").textContent = kind === "info" ? "✓" : "!";
    $("message").hidden = false;
    clearTimeout(messageTimer);
    if (kind === "info") messageTimer = setTimeout(hideMessage, 6000);
  }
  const showError = (error) => showMessage(error && error.message ? error.message : String(error), "error");
  const showInfo = (text) => showMessage(text, "info");
  function hideMessage() {
    $("message").hidden = true;
  }

  // ── state ─────────────────────────────────────────────────────────────────
  const state = {
    info: null,
    defaults: {}, // nst's Config defaults
    taskDefaults: {}, // the same, as each task's command sets them
    choices: {},
    task: "transfer",
    mode: "gatys", // fast | refine (fast, then the optimization from it) | gatys (the optimization alone)
    inputs: { content: null, styles: [], mask: null, init: null },
    runs: new Map(),
    cards: new Map(),
    queue: [],
    running: null,
    mine: new Set(), // jobs started from this tab
    follow: true, // show the live run as soon as one starts
    view: { kind: "empty" },
    live: freshLive(null),
    sweeps: new Map(),
    fetching: new Set(),
    connectedOnce: false,
  };

  function freshLive(id) {
    return { id, frameWanted: 0, frameShown: 0, inflight: false, frameSince: 0, url: null, points: [], scale: -1,
      scaleStarts: [], last: null, drawPending: false, lastDraw: 0, dirty: false, pending: null, displayed: 0,
      finished: false, preview: null };
  }

  // ── inputs: uploads, samples, thumbnails ─────────────────────────────────
  function refSource(ref) {
    if (typeof ref !== "string") return "";
    if (ref.startsWith("upload:")) return withToken("api/uploads/" + encodeURIComponent(ref.slice(7)));
    if (ref.startsWith("sample:")) return withToken("api/samples/" + encodeURIComponent(ref.slice(7)));
    return "";
  }

  function refName(ref) {
    if (typeof ref !== "string") return "";
    if (ref.startsWith("sample:")) return ref.slice(7).replace(/_/g, " ");
    if (ref.startsWith("upload:")) return "upload " + ref.slice(7, 15);
    return ref;
  }

  function inputItem(ref, name, width, height) {
    return { ref, name: name || refName(ref), width: width || null, height: height || null, weight: 1 };
  }

  async function upload(file) {
    const limit = state.info && state.info.max_upload_bytes;
    if (limit && file.size > limit) {
      throw new StudioError(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the studio takes up to ${(limit / 1e6).toFixed(0)} MB`);
    }
    // Header values must be Latin-1: the name goes percent-encoded (the server decodes it).
    const shown = encodeURIComponent((file.name || "image").slice(0, 200));
    const data = await request("api/uploads", {
      method: "POST", body: file,
      headers: { "Content-Type": "application/octet-stream", "X-Filename": shown },
    });
    return inputItem("upload:" + data.id, file.name || data.name, data.width, data.height);
  }

  async function takeFiles(slot, files) {
    const list = Array.from(files || []).filter((f) => f && f.size !== undefined);
    if (!list.length) return;
    const zone = $(`${slot === "style" ? "style" : slot}-drop`);
    zone.classList.add("busy");
    try {
      for (const file of slot === "style" ? list : list.slice(0, 1)) {
        const item = await upload(file);
        if (slot === "style") state.inputs.styles.push(item);
        else state.inputs[slot] = item;
        renderInputs();
      }
      hideMessage();
    } catch (error) {
      showError(error);
    } finally {
      zone.classList.remove("busy");
      const picker = $(`${slot}-file`);
      if (picker) picker.value = "";
      saveDraft();
    }
  }

  function bindDrop(slot) {
    const zone = $(`${slot}-drop`);
    const picker = $(`${slot}-file`);
    zone.addEventListener("click", (event) => {
      if (event.target.closest("button, input, select, a")) return;
      picker.click();
    });
    zone.addEventListener("keydown", (event) => {
      if (event.target !== zone) return;
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        picker.click();
      }
    });
    picker.addEventListener("change", () => takeFiles(slot, picker.files));
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      takeFiles(slot, event.dataTransfer && event.dataTransfer.files);
    });
  }

  function thumbItem(item, onRemove, withWeight) {
    const size = item.width && item.height ? `${item.width} × ${item.height}` : "";
    const image = el("img", { alt: "", src: refSource(item.ref), loading: "lazy" });
    image.addEventListener("error", () => image.classList.add("broken"));
    const text = el("div", { class: "thumb-text" }, [
      el("div", { class: "thumb-name", text: item.name, title: item.name }),
      size ? el("div", { class: "thumb-size", text: size }) : null,
    ]);
    if (withWeight) {
      const weight = el("input", { type: "text", inputmode: "decimal", value: String(item.weight),
        "aria-label": `blend weight of ${item.name}` });
      weight.addEventListener("input", () => {
        const value = Number(weight.value);
        item.weight = weight.value.trim() !== "" && Number.isFinite(value) ? value : weight.value;
        saveDraft();
      });
      text.appendChild(el("label", { class: "thumb-weight" }, [el("span", { text: "blend weight" }), weight]));
    }
    const remove = el("button", { type: "button", class: "icon-button", title: "remove", "aria-label": `remove ${item.name}`,
      text: "×", onclick: onRemove });
    return el("div", { class: "thumb-item", dataset: { ref: item.ref } }, [image, text, remove]);
  }

  function renderInputs() {
    for (const slot of ["content", "mask", "init"]) {
      const box = $(`${slot}-chosen`);
      box.replaceChildren();
      const item = state.inputs[slot];
      if (item) {
        box.appendChild(thumbItem(item, () => {
          state.inputs[slot] = null;
          renderInputs();
          saveDraft();
        }, false));
      }
      box.parentElement.querySelector(".drop-hint").hidden = Boolean(item);
    }
    const styles = $("style-chosen");
    styles.replaceChildren();
    const several = state.inputs.styles.length > 1;
    state.inputs.styles.forEach((item, index) => {
      styles.appendChild(thumbItem(item, () => {
        state.inputs.styles.splice(index, 1);
        renderInputs();
        saveDraft();
      }, several));
    });
    $("style-drop").querySelector(".drop-hint").textContent = "";
    const hint = $("style-drop").querySelector(".drop-hint");
    hint.appendChild(el("strong", { text: state.inputs.styles.length ? "Add another style" : "Drop style images" }));
    hint.appendChild(document.createTextNode(" or click to choose"));
  }

  function renderSamples() {
    const samples = (state.info && state.info.samples) || {};
    const fill = (box, names, pick) => {
      box.replaceChildren();
      for (const name of names || []) {
        if (typeof name !== "string") continue;
        const ref = "sample:" + name;
        box.appendChild(el("button", { type: "button", class: "sample", title: name.replace(/_/g, " "),
          "aria-label": `sample ${name.replace(/_/g, " ")}`, onclick: () => pick(inputItem(ref)) },
        [el("img", { alt: "", src: refSource(ref), loading: "lazy" })]));
      }
    };
    fill($("content-samples"), samples.content, (item) => {
      state.inputs.content = item;
      renderInputs();
      saveDraft();
    });
    fill($("style-samples"), samples.style, (item) => {
      if (!state.inputs.styles.some((s) => s.ref === item.ref)) state.inputs.styles.push(item);
      renderInputs();
      saveDraft();
    });
  }

  // ── controls ──────────────────────────────────────────────────────────────
  class LogSlider {
    constructor(root) {
      this.name = root.dataset.name;
      this.range = root.querySelector("input[type=range]");
      this.text = root.querySelector(".value");
      this.lo = Number(root.dataset.min);
      this.hi = Number(root.dataset.max);
      this.zero = root.dataset.zero === "1";
      this.range.min = String(this.zero ? this.lo - 0.5 : this.lo);
      this.range.max = String(this.hi);
      this.range.step = "0.05";
      this.value = 0;
      this.range.addEventListener("input", () => {
        const p = Number(this.range.value);
        this.value = this.zero && p < this.lo ? 0 : Number((10 ** p).toPrecision(2));
        this.text.value = this.value === 0 && this.zero ? "0" : fmtNumber(this.value);
        settingsChanged();
      });
      this.text.addEventListener("change", () => {
        const raw = this.text.value.trim();
        const number = Number(raw);
        // A value that is not a number goes to the server as typed: its message explains.
        this.value = raw !== "" && Number.isFinite(number) ? number : raw;
        if (typeof this.value === "number") this.place(this.value);
        settingsChanged();
      });
    }

    place(value) {
      if (value <= 0) this.range.value = String(this.zero ? this.lo - 0.5 : this.lo);
      else this.range.value = String(Math.min(this.hi, Math.max(this.lo, Math.log10(value))));
    }

    set(value) {
      this.value = value;
      this.text.value = typeof value === "number" ? fmtNumber(value) : String(value);
      if (typeof value === "number") this.place(value);
    }
  }

  const sliders = {};

  function renderChips(name) {
    const box = document.querySelector(`.chips[data-for="${name}"]`);
    const chosen = new Set(layerList($(name).value));
    box.replaceChildren();
    let index = 1;
    CONV_BLOCKS.forEach((count, block) => {
      const group = el("span", { class: "chip-group", title: `block ${block + 1}` });
      for (let i = 0; i < count; i += 1, index += 1) {
        const layer = `conv_${index}`;
        group.appendChild(el("button", { type: "button", class: "chip", text: String(index),
          title: `${layer} (conv${block + 1}_${i + 1})`, "aria-pressed": chosen.has(layer) ? "true" : "false",
          onclick: () => toggleLayer(name, layer) }));
      }
      box.appendChild(group);
    });
  }

  function layerList(text) {
    return String(text || "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  }

  function layerIndex(name) {
    const m = /^(conv|relu)_(\d+)$/.exec(name);
    return m ? Number(m[2]) : 99;
  }

  function toggleLayer(name, layer) {
    let list = layerList($(name).value);
    if (list.includes(layer)) list = list.filter((l) => l !== layer);
    else list = [...list, layer].sort((a, b) => layerIndex(a) - layerIndex(b));
    $(name).value = list.join(", ");
    renderChips(name);
    settingsChanged();
  }

  function fillSelect(id, values, fallback) {
    const select = $(id);
    const list = Array.isArray(values) && values.length ? values : fallback;
    select.replaceChildren(...list.map((v) => el("option", { value: String(v), text: String(v) })));
  }

  function setRadio(name, value) {
    for (const input of document.querySelectorAll(`input[name="${name}"]`)) input.checked = input.value === value;
  }

  function radioValue(name) {
    const input = document.querySelector(`input[name="${name}"]:checked`);
    return input ? input.value : "";
  }

  function setTask(task) {
    state.task = ["transfer", "reconstruct", "texture"].includes(task) ? task : "transfer";
    setRadio("task", state.task);
    applyVisibility();
    $("task-note").textContent = TASK_NOTES[state.task];
    const auto = $("init").querySelector('option[value=""]');
    auto.textContent = `auto (${state.task === "transfer" ? "content" : "noise"})`;
    if (state.view.kind === "empty") resetEmpty();
  }

  // ── the method: fast only, fast then refine, the optimization alone ───────
  function fastInfo() {
    return (state.info && state.info.fast) || { available: false, reason: "this server does not say", refused: [] };
  }

  function defaultMode() {
    return fastInfo().available ? "refine" : "gatys";
  }

  /** The method control; without a decoder the fast choices are off, with the server's reason. */
  function setMode(mode) {
    const fast = fastInfo();
    state.mode = fast.available && ["fast", "refine"].includes(mode) ? mode : "gatys";
    setRadio("mode", state.mode);
    for (const input of document.querySelectorAll('input[name="mode"]')) {
      input.disabled = input.value !== "gatys" && !fast.available;
    }
    $("mode-note").textContent = !fast.available ? `fast: not available (${fast.reason || "no decoder"})`
      : state.mode === "fast" ? "One pass through a trained decoder: the picture in about a second."
        : state.mode === "refine" ? "The fast result at once, then the optimization refines it live."
          : "The optimization alone, from the start image below.";
    $("strength-field").hidden = state.mode === "gatys";
    applyVisibility();
    initChanged();
  }

  /** Show the controls of this task and method: "fast only" has no optimization settings. */
  function applyVisibility() {
    const fastOnly = state.task === "transfer" && state.mode === "fast";
    const fastStart = state.task === "transfer" && state.mode === "refine";
    for (const node of document.querySelectorAll("[data-tasks], [data-gatys]")) {
      const forTask = !node.dataset.tasks || node.dataset.tasks.split(" ").includes(state.task);
      node.hidden = !forTask || (fastOnly && node.dataset.gatys !== undefined) ||
        (fastStart && node.id === "init-field");
    }
  }

  function resetEmpty() {
    const what = state.task === "texture" ? "a style image" : state.task === "reconstruct" ? "a content image"
      : "a content and a style image";
    $("canvas-empty").replaceChildren(
      el("p", { class: "big" }, [document.createTextNode(`Choose ${what}, then `), el("strong", { text: "Start" }),
        document.createTextNode(".")]),
      el("p", { class: "muted", text: "The image appears here, live, while it is being optimized." }));
  }

  function initChanged() {
    const value = $("init").value;
    const ownStart = state.task !== "transfer" || state.mode === "gatys";
    $("alpha-field").hidden = value !== "blend" || !ownStart;
    $("init-image-field").hidden = value !== "image" || !ownStart;
  }

  function intOrRaw(id) {
    const raw = $(id).value.trim();
    if (raw === "") return null;
    const number = Number(raw);
    return Number.isInteger(number) ? number : raw;
  }

  /** The settings in the controls, as Config fields (null: nst's default). */
  function readOptions() {
    const o = {};
    for (const [name, slider] of Object.entries(sliders)) o[name] = slider.value;
    const init = $("init").value;
    o.init = init === "" ? null : init === "image" ? (state.inputs.init ? state.inputs.init.ref : "image") : init;
    o.alpha = Number($("alpha").value);
    o.size = intOrRaw("size");
    o.steps = intOrRaw("steps");
    o.scales = intOrRaw("scales");
    const seed = $("seed").value.trim();
    o.seed = seed === "" ? null : /^\d+$/.test(seed) ? (Number.isSafeInteger(Number(seed)) ? Number(seed) : seed) : seed;
    o.preserve_color = radioValue("preserve_color") || null;
    o.content_layers = layerList($("content_layers").value);
    o.style_layers = layerList($("style_layers").value);
    const weights = state.inputs.styles.map((s) => s.weight);
    o.style_blend = weights.length > 1 && weights.some((w) => w !== weights[0]) ? weights : null;
    o.optimizer = $("optimizer").value;
    o.style_loss = $("style_loss").value;
    o.pooling = $("pooling").value;
    if (state.task === "transfer" && state.mode === "fast") o.method = "fast";
    if (state.task === "transfer" && state.mode === "refine") o.init = "fast";
    if (state.task === "transfer" && state.mode !== "gatys") o.strength = Number($("strength").value);
    return o;
  }

  const TASK_IGNORES = {
    transfer: [],
    reconstruct: ["content_weight", "style_weight", "style_layers", "style_blend", "preserve_color"],
    texture: ["content_weight", "style_weight", "content_layers", "preserve_color"],
  };

  function defaultsFor(task) {
    const own = state.taskDefaults[task];
    return own && typeof own === "object" ? own : state.defaults;
  }

  /** Only what differs from nst's defaults: the server fills in the rest. */
  function changedOptions(options, task) {
    const out = {};
    const refused = options.method === "fast" ? fastInfo().refused || [] : [];
    for (const [key, value] of Object.entries(options)) {
      if (TASK_IGNORES[task].includes(key) || refused.includes(key)) continue;
      const base = defaultsFor(task)[key];
      if (value === null && (base === null || base === undefined)) continue;
      if (JSON.stringify(value) === JSON.stringify(base === undefined ? null : base)) continue;
      if (key === "alpha" && options.init !== "blend") continue;
      out[key] = value;
    }
    return out;
  }

  function buildJob() {
    const task = state.task;
    const { content, styles, mask } = state.inputs;
    if (task !== "texture" && !content) throw new StudioError("Choose a content image first (drop one, pick a file or a sample).");
    if (task !== "reconstruct" && !styles.length) throw new StudioError("Choose at least one style image first.");
    if ($("init").value === "image" && !state.inputs.init && (task !== "transfer" || state.mode === "gatys")) throw new StudioError("Choose the start image, or another kind of start.");
    return {
      task,
      content: task === "texture" ? null : content.ref,
      styles: task === "reconstruct" ? [] : styles.map((s) => s.ref),
      mask: task === "transfer" && mask ? mask.ref : null,
      options: changedOptions(readOptions(), task),
    };
  }

  /** Put settings (nst's defaults, or a run's options) into the controls; the method
   *  from them (method fast, init fast), else `mode`, else the default one. */
  function applyOptions(options, mode) {
    const o = Object.assign({}, defaultsFor(state.task), options || {});
    const given = options || {};
    setMode(given.method === "fast" ? "fast" : given.init === "fast" ? "refine" : mode || defaultMode());
    const strength = typeof o.strength === "number" ? o.strength : 1;
    $("strength").value = String(strength);
    $("strength-out").textContent = fmtNumber(Number($("strength").value));
    for (const [name, slider] of Object.entries(sliders)) {
      const v = o[name];
      slider.set(typeof v === "number" ? v : Number(v) || 0);
    }
    const init = o.init;
    if (typeof init === "string" && init.startsWith("upload:")) {
      $("init").value = "image";
      state.inputs.init = inputItem(init, "start image");
    } else {
      $("init").value = ["content", "noise", "blend"].includes(init) ? init : "";
    }
    $("alpha").value = String(typeof o.alpha === "number" ? o.alpha : 0.5);
    $("alpha-out").textContent = fmtNumber(Number($("alpha").value));
    $("size").value = o.size === null || o.size === undefined ? "" : String(o.size);
    $("steps").value = o.steps === null || o.steps === undefined ? "" : String(o.steps);
    $("scales").value = o.scales === null || o.scales === undefined ? "" : String(o.scales);
    $("seed").value = o.seed === null || o.seed === undefined ? "" : String(o.seed);
    setRadio("preserve_color", o.preserve_color || "");
    $("content_layers").value = (o.content_layers || []).join(", ");
    $("style_layers").value = (o.style_layers || []).join(", ");
    renderChips("content_layers");
    renderChips("style_layers");
    for (const id of ["optimizer", "style_loss", "pooling"]) {
      if (o[id] !== undefined && o[id] !== null) $(id).value = String(o[id]);
    }
    if (Array.isArray(o.style_blend)) {
      state.inputs.styles.forEach((s, i) => { s.weight = o.style_blend[i] !== undefined ? o.style_blend[i] : 1; });
    }
    initChanged();
    renderInputs();
  }

  function settingsChanged() {
    saveDraft();
    updateActions();
  }

  // ── drafts: the controls survive a reload of the page ─────────────────────
  const DRAFT_KEY = "nst-studio-draft";
  let draftTimer = null;
  function saveDraft() {
    clearTimeout(draftTimer);
    draftTimer = setTimeout(() => {
      try {
        localStorage.setItem(DRAFT_KEY, toJSON({ task: state.task, mode: state.mode, inputs: state.inputs,
          options: readOptions() }));
      } catch (error) { /* private mode, full storage: the draft is a convenience */ }
    }, 150);
  }

  function loadDraft() {
    let draft = null;
    try {
      draft = parseJSON(localStorage.getItem(DRAFT_KEY) || "null");
    } catch (error) {
      draft = null;
    }
    if (!draft || typeof draft !== "object") return false;
    const valid = (item) => item && typeof item.ref === "string" && /^(upload|sample):[\w.\-]+$/.test(item.ref);
    const inputs = draft.inputs || {};
    state.inputs.content = valid(inputs.content) ? inputs.content : null;
    state.inputs.mask = valid(inputs.mask) ? inputs.mask : null;
    state.inputs.init = valid(inputs.init) ? inputs.init : null;
    state.inputs.styles = Array.isArray(inputs.styles) ? inputs.styles.filter(valid) : [];
    setTask(draft.task);
    applyOptions(draft.options || {}, typeof draft.mode === "string" ? draft.mode : undefined);
    return true;
  }

  // ── jobs: start, stop, restart ────────────────────────────────────────────
  async function startJob() {
    let job;
    try {
      job = buildJob();
    } catch (error) {
      showError(error);
      return null;
    }
    $("start").disabled = true;
    try {
      const run = await request("api/jobs", { method: "POST", body: job });
      hideMessage();
      if (run && run.id) {
        state.mine.add(run.id);
        state.follow = true;
        onJob(run);
        if (!state.running) showRun(run.id);
      }
      return run;
    } catch (error) {
      showError(error);
      return null;
    } finally {
      $("start").disabled = false;
    }
  }

  async function stopJob(id) {
    try {
      const run = await request(`api/jobs/${encodeURIComponent(id)}/stop`, { method: "POST" });
      if (run && run.id) onJob(run);
    } catch (error) {
      showError(error);
    }
  }

  async function restartJob() {
    const current = state.running || (state.view.kind === "run" && ACTIVE.has(statusOf(state.view.id)) ? state.view.id : null);
    let job;
    try {
      job = buildJob();
    } catch (error) {
      showError(error);
      return;
    }
    if (current) await stopJob(current);
    $("restart").disabled = true;
    try {
      const run = await request("api/jobs", { method: "POST", body: job });
      if (run && run.id) {
        state.mine.add(run.id);
        state.follow = true;
        onJob(run);
        showRun(run.id);
      }
      hideMessage();
    } catch (error) {
      showError(error);
    } finally {
      $("restart").disabled = false;
    }
  }

  function statusOf(id) {
    const run = state.runs.get(id);
    return run ? run.status : "";
  }

  function labelOf(id) {
    const run = state.runs.get(id);
    if (!run) return id;
    return run.label || `${run.task || "run"} ${id}`;
  }

  function updateActions() {
    const busy = Boolean(state.running) || state.queue.length > 0;
    $("restart").hidden = !state.running;
    $("start").textContent = busy ? "Add to queue" : "Start";
  }

  // ── server events ─────────────────────────────────────────────────────────
  // A run only moves forward: queued, running, then one of the ends. A reply that
  // left the server before an event (POST stop answers "running") must not undo it.
  const rank = (status) => (status === "queued" ? 0 : status === "running" ? 1 : DONE.has(status) ? 2 : -1);

  function onJob(run) {
    if (!run || typeof run.id !== "string") return;
    const before = state.runs.get(run.id);
    if (before && rank(run.status) < rank(before.status)) return;
    const merged = Object.assign({}, before || {}, run);
    state.runs.set(run.id, merged);
    upsertCard(merged);
    if (merged.status === "running") {
      if (state.live.id !== run.id) beginLive(run.id);
      state.running = run.id;
    } else if (state.running === run.id && !ACTIVE.has(merged.status)) {
      state.running = null;
    }
    if (DONE.has(merged.status) && before && before.status !== merged.status) {
      if (merged.status === "failed" && state.mine.has(run.id)) {
        showMessage(`${labelOf(run.id)} failed: ${merged.error || "no message"}`, "error");
      }
      if (merged.kind === "sweep") loadStudies(); // its results.json is complete now
      if (state.live.id === run.id) {
        state.live.finished = true;
        if (merged.status === "finished") setProgress(1);
      }
    }
    renderQueue();
    updateActions();
    refreshCompareChoices();
    if (state.view.kind === "run" && state.view.id === run.id) renderView();
    if (state.view.kind === "empty" && state.follow && (merged.status === "running" || state.mine.has(run.id))) showRun(run.id);
  }

  function onQueue(data) {
    if (!data) return;
    state.queue = Array.isArray(data.queue) ? data.queue.filter((id) => typeof id === "string") : [];
    state.running = typeof data.running === "string" ? data.running : null;
    if (state.running && state.live.id !== state.running) beginLive(state.running);
    for (const id of [state.running, ...state.queue]) if (id && !state.runs.has(id)) fetchRun(id);
    renderQueue();
    updateActions();
  }

  function onStep(data) {
    if (!data || typeof data.id !== "string") return;
    if (state.live.id !== data.id) beginLive(data.id);
    if (!state.runs.has(data.id)) fetchRun(data.id);
    const live = state.live;
    // step and total_steps count over every scale (scale_step: within the scale).
    const scale = Number(data.scale) || 0;
    const x = Number(data.step) || 0;
    let previous = live.points[live.points.length - 1];
    if (previous && x < previous.x) { // the next run of a sweep
      live.points = [];
      live.scaleStarts = [];
      live.scale = -1;
      previous = undefined;
    }
    if (scale !== live.scale) {
      live.scale = scale;
      live.scaleStarts.push(x - (Number(data.scale_step) || 0));
    }
    if (data.losses && typeof data.losses === "object") {
      if (!previous || previous.x !== x) live.points.push({ x, losses: data.losses });
      if (live.points.length > 4000) live.points = live.points.filter((_, i) => i % 2 === 0);
    }
    live.last = data;
    const run = state.runs.get(data.id);
    if (run && run.status === "queued") run.status = "running";
    live.dirty = true;
    if (isShowingLive()) scheduleLiveRender();
    const frame = Number(data.frame);
    if (Number.isFinite(frame) && frame > live.frameWanted) {
      live.frameWanted = frame;
      pumpFrame();
    }
  }

  /** A frame event: a picture before any step (the fast result a refined run starts
   *  from), its JPEG inside as a data: URL, shown at once. */
  function onFrame(data) {
    if (!data || typeof data.id !== "string" || typeof data.image !== "string" ||
        !data.image.startsWith("data:image/jpeg;base64,")) return;
    if (state.live.id !== data.id) beginLive(data.id);
    if (!state.runs.has(data.id)) fetchRun(data.id);
    const live = state.live;
    const frame = Number(data.frame) || 1;
    if (frame <= live.displayed || (live.pending && live.pending.frame >= frame)) return;
    live.frameWanted = Math.max(live.frameWanted, frame);
    live.frameShown = Math.max(live.frameShown, frame); // no fetch: it is here already
    if (live.pending) URL.revokeObjectURL(live.pending.url);
    live.pending = { url: data.image, frame };
    live.preview = data;
    if (isShowingLive()) scheduleLiveRender();
  }

  function onSweep(data) {
    if (!data || typeof data.id !== "string") return;
    state.sweeps.set(data.id, data);
    renderSweep(data);
    if (data.total && data.done >= data.total) loadStudies();
  }

  async function fetchRun(id) {
    if (state.fetching.has(id)) return;
    state.fetching.add(id);
    try {
      const run = await request(`api/runs/${encodeURIComponent(id)}`);
      if (run && run.id) onJob(run);
    } catch (error) { /* gone already: nothing to show */ }
    finally {
      state.fetching.delete(id);
    }
  }

  let events = null;
  let retry = 1000;
  function connect() {
    if (events) events.close();
    const source = new EventSource(withToken("api/events"));
    events = source;
    setConnection("connecting");
    source.addEventListener("open", () => {
      retry = 1000;
      setConnection("live");
      if (state.connectedOnce) {
        loadRuns();
        loadStudies();
      }
      state.connectedOnce = true;
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setConnection("lost");
        setTimeout(() => { if (events === source) connect(); }, retry);
        retry = Math.min(retry * 2, 15000);
      } else {
        setConnection("connecting");
      }
    });
    const handle = (name, fn) => source.addEventListener(name, (event) => {
      let data;
      try {
        data = parseJSON(event.data);
      } catch (error) {
        return;
      }
      fn(data);
    });
    handle("job", onJob);
    handle("step", onStep);
    handle("frame", onFrame);
    handle("queue", onQueue);
    handle("sweep", onSweep);
  }

  function setConnection(kind) {
    const node = $("connection");
    node.dataset.state = kind;
    node.textContent = kind === "live" ? "connected" : kind === "lost" ? "server unreachable" : "connecting…";
  }

  // ── the live run ──────────────────────────────────────────────────────────
  function beginLive(id) {
    if (state.live.url) URL.revokeObjectURL(state.live.url);
    if (state.live.pending) URL.revokeObjectURL(state.live.pending.url);
    state.live = freshLive(id);
    if (state.follow || state.mine.has(id) || state.view.kind === "empty") {
      state.view = { kind: "run", id };
      state.follow = true;
    }
    renderView();
  }

  function isShowingLive() {
    return state.view.kind === "run" && state.view.id === state.live.id && state.live.id !== null;
  }

  /** Fetch the newest frame; never more than one request in flight, older frames skipped. */
  async function pumpFrame() {
    const live = state.live;
    if (live.inflight || !live.id || live.frameWanted <= live.frameShown) return;
    if (document.hidden || !isShowingLive()) return;
    const status = statusOf(live.id);
    if (status && !ACTIVE.has(status)) return;
    live.inflight = true;
    live.frameSince = live.frameSince || performance.now();
    const wanted = live.frameWanted;
    let blob = null;
    let frame = wanted;
    try {
      const response = await request(`api/jobs/${encodeURIComponent(live.id)}/frame`, { raw: true });
      const number = Number(response.headers.get("X-Frame"));
      blob = await response.blob();
      if (Number.isFinite(number) && number > 0) frame = number;
    } catch (error) {
      blob = null; // no frame (404): wait for the next one
    } finally {
      live.inflight = false;
      live.frameShown = Math.max(live.frameShown, frame, wanted);
    }
    if (state.live !== live) return;
    if (live.frameWanted > live.frameShown) pumpFrame(); // a newer one was announced meanwhile
    if (!blob) {
      if (!live.inflight) live.frameSince = 0;
      return;
    }
    const url = URL.createObjectURL(blob);
    try {
      const image = new Image();
      image.src = url;
      await image.decode(); // decoded now, off the page's thread; shown at the next render
    } catch (error) { /* shown anyway: the img element reports its own failure */ }
    if (!live.inflight) live.frameSince = 0;
    if (state.live !== live || frame <= live.displayed || (live.pending && live.pending.frame >= frame)) {
      URL.revokeObjectURL(url);
      return;
    }
    if (live.pending) URL.revokeObjectURL(live.pending.url);
    live.pending = { url, frame };
    scheduleLiveRender();
  }

  function renderLiveNote() {
    const live = state.live;
    const note = $("live-note");
    const preview = isShowingLive() && live.preview && ACTIVE.has(statusOf(live.id) || "running");
    note.hidden = !preview;
    if (!preview) return;
    const after = Number(live.preview.elapsed_s);
    note.textContent = `fast result${Number.isFinite(after) ? ` after ${fmtDuration(after)}` : ""}` +
      (live.last ? " · refining" : " · the optimization refines it next");
  }

  function showFrame(src, number) {
    const frame = $("frame");
    if (frame.getAttribute("src") !== src) frame.src = src;
    frame.dataset.frame = number === undefined ? "" : String(number);
    frame.hidden = false;
    $("canvas-empty").hidden = true;
  }

  function renderProgress() {
    const last = state.live.last;
    if (!last) return;
    $("progress").hidden = false;
    const scales = Math.max(1, Number(last.scales) || 1);
    const scale = Number(last.scale) || 0;
    const step = Number(last.step) || 0;
    const total = Math.max(1, Number(last.total_steps) || 1);
    $("stat-step").textContent = `${step} / ${total}`;
    $("stat-step").title = last.scale_step !== undefined ? `${last.scale_step} of ${last.scale_steps} in this scale` : "";
    $("stat-scale").textContent = `${Math.min(scale + 1, scales)} of ${scales}`;
    $("stat-elapsed").textContent = fmtDuration(Number(last.elapsed_s));
    const eta = Number(last.eta_s);
    $("stat-eta").textContent = last.eta_s === null || last.eta_s === undefined || !Number.isFinite(eta)
      ? "–" : state.live.finished ? "0 s" : "≈ " + fmtDuration(eta);
    setProgress(state.live.finished && statusOf(state.live.id) === "finished" ? 1 : step / total);
    renderLegend(last.losses || {});
  }

  function setProgress(fraction) {
    $("progress-fill").style.transform = `scaleX(${Math.max(0, Math.min(1, fraction))})`;
  }

  function termClass(term) {
    return TERMS.includes(term) ? `term-${term}` : "term-other";
  }

  function renderLegend(losses) {
    const legend = $("loss-legend");
    const terms = Object.keys(losses).sort((a, b) => (TERMS.indexOf(a) + 10) % 14 - (TERMS.indexOf(b) + 10) % 14);
    const shown = [...legend.children].map((li) => li.dataset.term);
    if (shown.join("|") !== terms.join("|")) { // new terms: rebuild; else only the numbers change
      legend.replaceChildren(...terms.map((term) => el("li", { dataset: { term } }, [
        el("span", { class: `swatch ${termClass(term)}` }),
        el("span", { text: term }),
        el("span", { class: "num" }),
      ])));
    }
    terms.forEach((term, i) => {
      const text = fmtNumber(Number(losses[term]));
      const num = legend.children[i].lastChild;
      if (num.textContent !== text) num.textContent = text;
    });
    $("losses").hidden = terms.length === 0;
  }

  /** The live view changes at most twice a second, the new frame, the numbers and
   *  the curve together: every repaint is CPU time the run does not get, on a machine
   *  without a spare core. A step event that announces a frame waits for that frame
   *  (up to FRAME_WAIT_MS), so that both are shown in one repaint. */
  function scheduleLiveRender() {
    const live = state.live;
    if (live.drawPending) return;
    live.drawPending = true;
    const wait = Math.max(0, live.lastDraw + LIVE_RENDER_MS - performance.now());
    setTimeout(() => requestAnimationFrame(() => {
      live.drawPending = false;
      if (!isShowingLive() || state.live !== live) return;
      if (live.frameSince && performance.now() - live.frameSince < FRAME_WAIT_MS) {
        setTimeout(scheduleLiveRender, FRAME_WAIT_MS); // pumpFrame schedules the render first
        return;
      }
      live.lastDraw = performance.now();
      if (live.pending && DONE.has(statusOf(live.id))) { // the final image is up already
        URL.revokeObjectURL(live.pending.url);
        live.pending = null;
      }
      if (live.pending) {
        const old = live.url;
        live.url = live.pending.url;
        live.displayed = live.pending.frame;
        showFrame(live.url, live.pending.frame);
        live.pending = null;
        if (old && old.startsWith("blob:")) URL.revokeObjectURL(old);
        renderLiveNote();
      }
      if (live.dirty) {
        live.dirty = false;
        renderLiveNote();
        renderProgress();
        drawCurve(live.points, live.scaleStarts);
      }
    }), wait);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Each loss term on a log scale against the step; long histories are thinned. */
  // The curve's size, kept by a ResizeObserver: reading clientWidth while drawing would
  // force a layout of the whole page on every step event.
  const curveBox = { width: 600, height: 120 };
  if (typeof ResizeObserver === "function") {
    new ResizeObserver((entries) => {
      const box = entries[entries.length - 1].contentRect;
      if (box.width > 0) curveBox.width = box.width;
      if (box.height > 0) curveBox.height = box.height;
      if (state.live.points.length > 1 && isShowingLive()) drawCurve(state.live.points, state.live.scaleStarts);
    }).observe($("curve"));
  }

  function drawCurve(points, scaleStarts) {
    const curve = $("curve");
    const width = Math.max(200, Math.round(curveBox.width));
    const height = Math.max(80, Math.round(curveBox.height));
    curve.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (!points || points.length < 2) {
      curve.replaceChildren();
      return;
    }
    // Axes are redrawn; the lines of the terms and the step label are kept and updated.
    let axes = curve.querySelector("g.axes");
    if (!axes) {
      curve.replaceChildren();
      axes = svg("g", { class: "axes" });
      curve.appendChild(axes);
      curve.appendChild(svg("text", { class: "step-label", "text-anchor": "end" }, ""));
    }
    axes.replaceChildren();
    const terms = [];
    for (const p of points) for (const t of Object.keys(p.losses)) if (!terms.includes(t)) terms.push(t);
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of points) {
      for (const t of terms) {
        const v = Number(p.losses[t]);
        if (v > 0 && Number.isFinite(v)) {
          lo = Math.min(lo, Math.log10(v));
          hi = Math.max(hi, Math.log10(v));
        }
      }
    }
    if (!Number.isFinite(lo)) return;
    if (hi - lo < 0.5) {
      lo -= 0.25;
      hi += 0.25;
    }
    const left = 40;
    const pad = 8;
    const x0 = points[0].x;
    const x1 = Math.max(points[points.length - 1].x, x0 + 1);
    const X = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - pad);
    const Y = (v) => pad + (1 - (Math.log10(v) - lo) / (hi - lo)) * (height - 2 * pad);
    for (let d = Math.ceil(lo); d <= Math.floor(hi); d += Math.max(1, Math.ceil((hi - lo) / 4))) {
      const y = Y(10 ** d);
      axes.appendChild(svg("line", { class: "grid", x1: left, x2: width - pad, y1: y, y2: y }));
      axes.appendChild(svg("text", { x: 4, y: y + 3 }, `1e${d}`));
    }
    for (const start of (scaleStarts || []).slice(1)) {
      if (start <= x0 || start >= x1) continue;
      const x = X(start);
      axes.appendChild(svg("line", { class: "grid", x1: x, x2: x, y1: pad, y2: height - pad, "stroke-dasharray": "3 3" }));
    }
    for (const line of curve.querySelectorAll("polyline")) if (!terms.includes(line.dataset.term)) line.remove();
    const stride = Math.max(1, Math.ceil(points.length / 400));
    for (const term of terms) {
      const coords = [];
      points.forEach((p, i) => {
        if (i % stride !== 0 && i !== points.length - 1) return;
        const v = Number(p.losses[term]);
        if (v > 0 && Number.isFinite(v)) coords.push(`${X(p.x).toFixed(1)},${Y(v).toFixed(1)}`);
      });
      let line = curve.querySelector(`polyline[data-term="${CSS.escape(term)}"]`);
      if (coords.length > 1) {
        if (!line) {
          line = svg("polyline", { class: termClass(term), "data-term": term });
          curve.insertBefore(line, curve.lastChild);
        }
        line.setAttribute("points", coords.join(" "));
      } else if (line) {
        line.remove();
      }
    }
    const label = curve.lastChild;
    label.setAttribute("x", String(width - pad));
    label.setAttribute("y", String(height - 2));
    label.textContent = `step ${points[points.length - 1].x}`;
  }

  // ── the viewer: a run (live or past) or a comparison ─────────────────────
  function showRun(id) {
    state.view = { kind: "run", id };
    renderView();
    if (id === state.live.id) {
      pumpFrame();
      scheduleLiveRender();
    }
  }

  function imageUrl(id, download) {
    return withToken(`api/runs/${encodeURIComponent(id)}/image${download ? "?download=1" : ""}`);
  }

  function runFacts(run) {
    const facts = [];
    const record = run.record || null;
    const config = (record && record.config) || {};
    const options = run.options || {};
    const get = (key) => (config[key] !== undefined && config[key] !== null ? config[key] : options[key]);
    facts.push(["task", run.task || config.task]);
    facts.push(["created", fmtWhen(run.created)]);
    if (get("size")) facts.push(["size", `${get("size")} px`]);
    if (record && record.steps !== undefined) facts.push(["steps", String(record.steps)]);
    else if (get("steps")) facts.push(["steps", String(get("steps"))]);
    if (get("content_weight") !== undefined && run.task === "transfer") facts.push(["content weight", fmtNumber(get("content_weight"))]);
    if (get("style_weight") !== undefined && run.task === "transfer") facts.push(["style weight", fmtNumber(get("style_weight"))]);
    if (get("method") === "fast") facts.push(["method", "fast"]);
    if (get("method") === "fast" || get("init") === "fast") facts.push(["strength", fmtNumber(Number(get("strength") ?? 1))]);
    if (get("init")) facts.push(["start", String(get("init")).startsWith("upload:") ? "an image" : String(get("init"))]);
    if (get("seed") !== undefined && get("seed") !== null) facts.push(["seed", String(get("seed"))]);
    if (record && record.final_losses) {
      const total = record.final_losses.total;
      if (total !== undefined) facts.push(["final loss", fmtNumber(Number(total))]);
    }
    if (record && record.run_time_s !== undefined) facts.push(["run time", fmtDuration(Number(record.run_time_s))]);
    if (record && record.device) facts.push(["device", String(record.device)]);
    return facts.filter(([, v]) => v !== undefined && v !== null && v !== "");
  }

  function renderView() {
    const view = state.view;
    const frame = $("frame");
    const compare = $("compare");
    const empty = $("canvas-empty");
    const run = view.kind === "run" ? state.runs.get(view.id) : null;
    const live = view.kind === "run" && view.id === state.live.id;
    $("back-live").hidden = !(state.running && !(view.kind === "run" && view.id === state.running));
    compare.hidden = view.kind !== "compare";
    $("compare-slider").hidden = view.kind !== "compare";
    for (const card of state.cards.values()) card.removeAttribute("aria-current");

    if (view.kind === "compare") {
      frame.hidden = true;
      empty.hidden = true;
      $("progress").hidden = true;
      $("losses").hidden = true;
      $("run-details").hidden = true;
      $("view-badge").dataset.status = "compare";
      $("view-badge").textContent = "compare";
      $("view-title").textContent = `${labelOf(view.a)}  ↔  ${labelOf(view.b)}`;
      $("compare-a").src = imageUrl(view.a);
      $("compare-b").src = imageUrl(view.b);
      $("compare-label-a").textContent = `A · ${labelOf(view.a)}`;
      $("compare-label-b").textContent = `B · ${labelOf(view.b)}`;
      applyCompare();
      setRunActions(state.runs.get(view.a), true);
      $("compare-with").value = view.b;
      const card = state.cards.get(view.a);
      if (card) card.setAttribute("aria-current", "true");
      return;
    }
    if (!run && !live) {
      frame.hidden = true;
      frame.removeAttribute("src");
      empty.hidden = false;
      resetEmpty();
      $("progress").hidden = true;
      $("losses").hidden = true;
      $("run-details").hidden = true;
      $("view-badge").dataset.status = "idle";
      $("view-badge").textContent = "idle";
      $("view-title").textContent = state.running ? "A run is in progress" : "Nothing running";
      setRunActions(null, false);
      return;
    }
    const status = run ? run.status : "running";
    $("view-badge").dataset.status = status;
    $("view-badge").textContent = status;
    $("view-title").textContent = labelOf(view.id);
    const card = state.cards.get(view.id);
    if (card) card.setAttribute("aria-current", "true");

    let src = null;
    let number;
    if (comparable(run)) src = imageUrl(view.id);
    else if (live && state.live.url) {
      src = state.live.url;
      number = state.live.displayed;
    }
    if (src) {
      showFrame(src, number);
      frame.classList.remove("small");
    } else {
      frame.hidden = true;
      frame.removeAttribute("src");
      empty.hidden = false;
      const message = run && run.kind === "sweep" && status === "finished" ? "The sweep is done: its grid is under Studies."
        : status === "queued" ? "Waiting in the queue…"
        : status === "running" ? "Starting: loading the network and the images…"
          : status === "failed" ? "This run failed: no image."
            : status === "stopped" ? "Stopped before it finished: no image was kept."
              : status === "interrupted" ? "Interrupted when the server stopped: its settings are kept; load them to run it again."
                : "No image.";
      empty.replaceChildren(el("p", { class: "big", text: message }));
    }

    renderLiveNote();
    if (live && state.live.last) {
      renderProgress();
      drawCurve(state.live.points, state.live.scaleStarts);
    } else {
      $("progress").hidden = true;
      const history = run && run.record && Array.isArray(run.record.history) ? run.record.history : [];
      if (history.length > 1) {
        drawCurve(history.map((losses, i) => ({ x: i + 1, losses })), []);
        renderLegend((run.record && run.record.final_losses) || history[history.length - 1]);
      } else {
        $("losses").hidden = true;
        $("curve").replaceChildren();
      }
    }
    const details = $("run-details");
    if (run && !ACTIVE.has(status)) {
      details.hidden = false;
      $("run-error").hidden = !run.error;
      $("run-error").textContent = run.error || "";
      $("run-facts").replaceChildren(...runFacts(run).map(([k, v]) => el("div", {}, [el("dt", { text: k }), el("dd", { text: v })])));
    } else {
      details.hidden = true;
    }
    setRunActions(run || { id: view.id, status }, false);
  }

  function setRunActions(run, comparing) {
    const status = run ? run.status : "";
    $("stop").hidden = !run || !ACTIVE.has(status);
    $("stop").disabled = false;
    $("reload-settings").hidden = !run || !(run.options || run.record || run.inputs);
    const finished = comparable(run);
    $("download").hidden = !finished;
    if (finished) {
      $("download").href = imageUrl(run.id, true);
      $("download").setAttribute("download", `${run.id}.png`);
    }
    const others = [...state.runs.values()].filter((r) => comparable(r) && (!run || r.id !== run.id));
    $("compare-pick").hidden = !comparable(run) || others.length === 0;
    $("delete-run").hidden = !run || ACTIVE.has(status) || !status;
    disarmDelete();
    if (!comparing) $("compare-with").value = "";
  }

  function comparable(run) {
    return Boolean(run) && run.status === "finished" && run.kind !== "sweep";
  }

  function refreshCompareChoices() {
    const select = $("compare-with");
    const current = state.view.kind === "compare" ? state.view.a : state.view.kind === "run" ? state.view.id : null;
    const keep = select.value;
    const options = [el("option", { value: "", text: "—" })];
    for (const run of sortedRuns()) {
      if (!comparable(run) || run.id === current) continue;
      options.push(el("option", { value: run.id, text: `${labelOf(run.id)} · ${fmtWhen(run.created)}` }));
    }
    select.replaceChildren(...options);
    select.value = keep;
  }

  function applyCompare() {
    const value = Number($("compare-slider").value);
    $("compare-top").style.clipPath = `inset(0 0 0 ${value}%)`;
    $("compare-line").style.left = `${value}%`;
  }

  let deleteTimer = null;
  function disarmDelete() {
    clearTimeout(deleteTimer);
    const button = $("delete-run");
    button.dataset.armed = "0";
    button.textContent = "Delete";
  }

  async function deleteRun(id) {
    const button = $("delete-run");
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Delete for good?";
      deleteTimer = setTimeout(disarmDelete, 4000);
      return;
    }
    disarmDelete();
    try {
      await request(`api/runs/${encodeURIComponent(id)}`, { method: "DELETE" });
      state.runs.delete(id);
      const card = state.cards.get(id);
      if (card) card.remove();
      state.cards.delete(id);
      if (state.live.id === id) state.live = freshLive(null);
      state.view = { kind: "empty" };
      renderView();
      renderGalleryMeta();
      refreshCompareChoices();
      showInfo("Run deleted.");
    } catch (error) {
      showError(error);
    }
  }

  function reloadSettings(id) {
    const run = state.runs.get(id);
    if (!run) return;
    const inputs = run.inputs || {};
    const ref = (value) => (typeof value === "string" ? value : value && typeof value.ref === "string" ? value.ref : null);
    const name = (value) => (value && typeof value === "object" && typeof value.name === "string" ? value.name : undefined);
    const options = run.options || (run.record && run.record.config) || {};
    setTask(run.task || options.task || "transfer");
    const content = ref(inputs.content);
    state.inputs.content = content ? inputItem(content, name(inputs.content)) : null;
    const styles = Array.isArray(inputs.styles) ? inputs.styles : [];
    state.inputs.styles = styles.map((s) => (ref(s) ? inputItem(ref(s), name(s)) : null)).filter(Boolean);
    const mask = ref(inputs.mask);
    state.inputs.mask = mask ? inputItem(mask, name(inputs.mask)) : null;
    const clean = Object.assign({}, options);
    delete clean.task;
    applyOptions(clean, "gatys"); // neither method fast nor init fast: the optimization alone
    renderInputs();
    saveDraft();
    updateActions();
    showInfo(`Settings of ${labelOf(id)} loaded: press Start to run them again, or change them first.`);
    document.getElementById("setup").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // ── queue ─────────────────────────────────────────────────────────────────
  function renderQueue() {
    const list = $("queue");
    const ids = [...(state.running ? [state.running] : []), ...state.queue.filter((id) => id !== state.running)];
    list.replaceChildren(...ids.map((id, index) => {
      const running = id === state.running;
      return el("li", { dataset: { status: running ? "running" : "queued", id } }, [
        el("span", { class: "q-pos", text: running ? "▶" : String(index + (state.running ? 0 : 1)) }),
        el("button", { type: "button", class: "ghost q-label", text: labelOf(id), title: "show", onclick: () => {
          state.follow = id === state.running;
          showRun(id);
        } }),
        el("span", { class: "badge", dataset: { status: running ? "running" : "queued" }, text: running ? "running" : "queued" }),
        el("button", { type: "button", class: "icon-button", title: running ? "stop" : "remove from the queue",
          "aria-label": running ? `stop ${labelOf(id)}` : `remove ${labelOf(id)} from the queue`, text: "×",
          onclick: () => stopJob(id) }),
      ]);
    }));
    $("queue-empty").hidden = ids.length > 0;
    $("queue-count").textContent = ids.length ? `${ids.length}` : "";
  }

  // ── history ───────────────────────────────────────────────────────────────
  function sortedRuns() {
    return [...state.runs.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  async function loadRuns() {
    try {
      const runs = listOf(await request("api/runs"), "runs");
      const seen = new Set();
      for (const run of runs) {
        if (!run || typeof run.id !== "string") continue;
        seen.add(run.id);
        const known = state.runs.get(run.id);
        if (known && rank(run.status) < rank(known.status)) continue; // an event was newer
        const merged = Object.assign({}, known || {}, run);
        state.runs.set(run.id, merged);
        upsertCard(merged);
      }
      for (const id of [...state.runs.keys()]) {
        if (!seen.has(id)) {
          state.runs.delete(id);
          const card = state.cards.get(id);
          if (card) card.remove();
          state.cards.delete(id);
        }
      }
      renderGalleryMeta();
      refreshCompareChoices();
      renderQueue();
      if (state.view.kind === "run") renderView();
    } catch (error) {
      showError(error);
    }
  }

  function upsertCard(run) {
    if (run.kind === "sweep") return; // a sweep shows under Studies
    const card = state.cards.get(run.id);
    const signature = `${run.status}|${run.label || ""}`;
    if (card && card.dataset.signature === signature) return;
    const image = el("div", { class: "card-image" });
    if (run.status === "finished") {
      image.appendChild(el("img", { alt: run.label || run.id, src: imageUrl(run.id), loading: "lazy" }));
    } else {
      const words = { queued: "in the queue", running: "running…", failed: "failed", stopped: "stopped",
        interrupted: "interrupted" }[run.status] || String(run.status || "");
      const inputs = run.inputs || {};
      const shown = refSource(inputs.content || (Array.isArray(inputs.styles) ? inputs.styles[0] : null));
      if (shown) image.appendChild(el("img", { class: "dim", alt: "", src: shown, loading: "lazy" }));
      image.appendChild(el("span", { class: "card-placeholder", text: words }));
    }
    const fresh = el("button", { type: "button", class: "card", dataset: { id: run.id, status: run.status || "", signature },
      title: run.error ? `${run.label || run.id}: ${run.error}` : run.label || run.id,
      onclick: () => {
        state.follow = run.id === state.running;
        showRun(run.id);
        $("studio").scrollIntoView({ behavior: "smooth", block: "start" });
      } }, [
      image,
      el("span", { class: "card-body" }, [
        el("span", { class: "card-label", text: run.label || `${run.task || "run"}` }),
        el("span", { class: "card-meta" }, [
          el("span", { text: fmtWhen(run.created) }),
          el("span", { class: "badge", dataset: { status: run.status || "" }, text: run.status || "" }),
        ]),
      ]),
    ]);
    if (state.view.kind === "run" && state.view.id === run.id) fresh.setAttribute("aria-current", "true");
    const gallery = $("gallery");
    if (card) {
      card.replaceWith(fresh);
    } else {
      const after = [...gallery.children].find((node) => node.dataset.id < run.id);
      gallery.insertBefore(fresh, after || null);
    }
    state.cards.set(run.id, fresh);
    renderGalleryMeta();
  }

  function renderGalleryMeta() {
    const count = state.runs.size;
    $("gallery-empty").hidden = count > 0;
    $("history-count").textContent = count ? `${count} run${count === 1 ? "" : "s"}` : "";
  }

  // ── studies and sweeps ────────────────────────────────────────────────────
  async function loadStudies() {
    try {
      const studies = listOf(await request("api/studies"), "studies");
      const list = $("study-list");
      list.replaceChildren(...studies.filter((s) => s && typeof s.name === "string").map((study) => el("li", {}, [
        el("a", { href: withToken(`studies/${encodeURIComponent(study.name)}/index.html`), target: "_blank",
          rel: "noopener", text: study.title || study.name }),
        study.title && study.title !== study.name ? el("span", { class: "muted", text: study.name }) : null,
        el("span", { class: "study-meta", text: study.runs !== undefined && study.runs !== null ? `${study.runs} runs` : "" }),
      ])));
      $("studies-empty").hidden = studies.length > 0 || state.sweeps.size > 0;
    } catch (error) {
      showError(error);
    }
  }

  function sweepValues(param, text) {
    return String(text).split(",").map((v) => v.trim()).filter(Boolean).map((v) => {
      if (!NUMERIC.has(param)) return v;
      const number = Number(v);
      return Number.isFinite(number) ? number : v;
    });
  }

  function defaultSweepName(param) {
    const now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `sweep-${param.replace(/_/g, "-")}-${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  }

  async function startSweep() {
    const param = $("sweep-param").value;
    const values = sweepValues(param, $("sweep-values").value);
    if (!values.length) {
      showError("Give the values to sweep, separated by commas.");
      return;
    }
    const { content, styles } = state.inputs;
    if (!content || !styles.length) {
      showError("A sweep needs a content and a style image: choose them above.");
      return;
    }
    const options = changedOptions(readOptions(), "transfer");
    delete options[param];
    if (param === "alpha" && options.init && options.init !== "blend") delete options.init;
    const name = $("sweep-name").value.trim() || defaultSweepName(param);
    $("sweep-start").disabled = true;
    try {
      const result = await request("api/sweeps", { method: "POST", body: {
        name, param, values, content: content.ref, styles: styles.map((s) => s.ref), options } });
      if (result && typeof result.id === "string") {
        if (result.status) onJob(result);
        state.mine.add(result.id);
        if (!state.sweeps.has(result.id)) onSweep({ id: result.id, name, done: 0, total: values.length, runs: [] });
      }
      $("sweep-name").value = defaultSweepName(param);
      showInfo(`Sweep ${name} queued: ${values.length} runs of ${param.replace(/_/g, " ")}.`);
    } catch (error) {
      showError(error);
    } finally {
      $("sweep-start").disabled = false;
    }
  }

  function renderSweep(data) {
    const box = $("sweeps-live");
    let card = box.querySelector(`[data-sweep="${CSS.escape(data.id)}"]`);
    if (!card) {
      card = el("div", { class: "sweep-card", dataset: { sweep: data.id } });
      box.prepend(card);
    }
    const done = Number(data.done) || 0;
    const total = Number(data.total) || 0;
    const runs = Array.isArray(data.runs) ? data.runs : [];
    const name = typeof data.name === "string" ? data.name : data.id;
    const head = el("div", { class: "sweep-card-head" }, [
      el("strong", { text: name }),
      el("span", { class: "muted", text: `${done} / ${total}` }),
      done > 0 ? el("a", { href: withToken(`studies/${encodeURIComponent(name)}/index.html`), target: "_blank",
        rel: "noopener", text: "report" }) : null,
    ]);
    const cells = runs.map((run) => el("figure", { class: "sweep-cell" }, [
      typeof run.image === "string" && run.image
        ? el("img", { alt: String(run.label || ""), src: withToken(run.image), loading: "lazy" })
        : el("div", { class: "pending", text: "…" }),
      el("figcaption", { text: String(run.label || "") }),
    ]));
    for (let i = runs.length; i < total; i += 1) {
      cells.push(el("figure", { class: "sweep-cell" }, [el("div", { class: "pending", text: i === runs.length ? "running" : "waiting" })]));
    }
    card.replaceChildren(head, el("div", { class: "sweep-grid" }, cells));
    $("studies-empty").hidden = true;
  }

  // ── start-up ──────────────────────────────────────────────────────────────
  async function loadInfo() {
    const info = await request("api/info");
    state.info = info || {};
    state.defaults = Object.assign({}, (info && info.defaults) || {});
    state.taskDefaults = (info && info.task_defaults) || {};
    state.choices = (info && info.options) || {};
    $("version").textContent = info && info.version ? `nst ${info.version}` : "";
    // The device runs compute on as resolved by the server (cpu, cuda:N, mps), a GPU with its name.
    const device = info && info.device ? String(info.device) : "";
    $("device").textContent = info && info.device_name ? `${device} · ${info.device_name}` : device;
    const pick = (...keys) => {
      for (const key of keys) if (Array.isArray(state.choices[key])) return state.choices[key];
      return null;
    };
    fillSelect("optimizer", pick("optimizer", "optimizers"), ["lbfgs", "adam"]);
    fillSelect("style_loss", pick("style_loss", "style_losses"), ["gram", "meancov"]);
    fillSelect("pooling", pick("pooling", "poolings"), ["max", "avg"]);
    renderSamples();
  }

  function bind() {
    for (const root of document.querySelectorAll(".logslider")) {
      const slider = new LogSlider(root);
      sliders[slider.name] = slider;
    }
    for (const slot of ["content", "style", "mask", "init"]) bindDrop(slot);
    // A file dropped beside a drop zone must not replace the page with the image.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());

    for (const input of document.querySelectorAll('input[name="task"]')) {
      input.addEventListener("change", () => {
        const changed = changedOptions(readOptions(), state.task);
        const mode = state.mode;
        setTask(radioValue("task"));
        applyOptions(changed, mode);
        settingsChanged();
      });
    }
    $("init").addEventListener("change", () => {
      initChanged();
      settingsChanged();
    });
    for (const input of document.querySelectorAll('input[name="mode"]')) {
      input.addEventListener("change", () => {
        setMode(radioValue("mode"));
        settingsChanged();
      });
    }
    $("strength").addEventListener("input", () => {
      $("strength-out").textContent = fmtNumber(Number($("strength").value));
      settingsChanged();
    });
    $("alpha").addEventListener("input", () => {
      $("alpha-out").textContent = fmtNumber(Number($("alpha").value));
      settingsChanged();
    });
    for (const id of ["size", "steps", "scales", "seed", "optimizer", "style_loss", "pooling"]) {
      $(id).addEventListener("change", settingsChanged);
    }
    for (const input of document.querySelectorAll('input[name="preserve_color"]')) input.addEventListener("change", settingsChanged);
    for (const name of ["content_layers", "style_layers"]) {
      $(name).addEventListener("input", () => {
        renderChips(name);
        settingsChanged();
      });
    }
    $("seed-new").addEventListener("click", () => {
      $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
      settingsChanged();
    });
    $("reset-settings").addEventListener("click", () => {
      $("seed").value = "";
      applyOptions({});
      settingsChanged();
      showInfo("Every setting is back to nst's default.");
    });
    $("setup").addEventListener("submit", (event) => {
      event.preventDefault();
      startJob();
    });
    $("restart").addEventListener("click", restartJob);
    $("stop").addEventListener("click", () => {
      const id = state.view.kind === "run" ? state.view.id : state.running;
      if (id) {
        $("stop").disabled = true;
        stopJob(id);
      }
    });
    $("back-live").addEventListener("click", () => {
      state.follow = true;
      if (state.running) showRun(state.running);
    });
    $("reload-settings").addEventListener("click", () => {
      const id = state.view.kind === "compare" ? state.view.a : state.view.id;
      if (id) reloadSettings(id);
    });
    $("delete-run").addEventListener("click", () => {
      const id = state.view.kind === "compare" ? state.view.a : state.view.id;
      if (id) deleteRun(id);
    });
    $("compare-with").addEventListener("change", () => {
      const a = state.view.kind === "compare" ? state.view.a : state.view.id;
      const b = $("compare-with").value;
      if (!a) return;
      state.view = b ? { kind: "compare", a, b } : { kind: "run", id: a };
      renderView();
    });
    $("compare-slider").addEventListener("input", applyCompare);
    $("message-close").addEventListener("click", hideMessage);
    $("history-refresh").addEventListener("click", loadRuns);
    $("studies-refresh").addEventListener("click", loadStudies);
    $("sweep-param").addEventListener("change", () => {
      const param = $("sweep-param").value;
      $("sweep-values").value = SWEEP_VALUES[param] || "";
      $("sweep-name").value = defaultSweepName(param);
    });
    $("sweep-form").addEventListener("submit", (event) => {
      event.preventDefault();
      startSweep();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) pumpFrame();
    });
    window.addEventListener("resize", () => {
      state.live.dirty = true;
      if (isShowingLive()) scheduleLiveRender();
    });
  }

  async function main() {
    bind();
    setTask("transfer");
    $("sweep-values").value = SWEEP_VALUES.alpha;
    $("sweep-name").value = defaultSweepName("alpha");
    try {
      await loadInfo();
    } catch (error) {
      showError(error);
      setConnection("lost");
      return;
    }
    if (!loadDraft()) applyOptions({});
    renderInputs();
    renderQueue();
    renderView();
    updateActions();
    await loadRuns();
    loadStudies();
    connect();
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
