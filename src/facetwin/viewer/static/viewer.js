// Viewer for one result: the GLB in three.js, the fitted camera over the photo, expressions, numbers.
//
// Frames (see facetwin/frames.py): the GLB is the head frame in metres, y up, z out of the face (= three.js
// world). report.json's camera is OpenCV (x right, y down, z forward) in centimetres:
// X_cam = R @ X_cm + t, pixel = K X_cam / z with the origin at the image's top-left corner (pixel centres at
// +0.5). fittedPose() and fittedProjection() are the only places that convert it.

import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { cardNumbers } from './gallery.js';

const CM_TO_M = 0.01;
const NEAR_M = 0.01; // fitted camera clip planes, metres: a head is 0.1 m .. 10 m from a portrait camera
const FAR_M = 100.0;
const BACKGROUND = 0x2b2d31;

const GROUPS = [
  ['brows', /^brow/],
  ['eyes', /^eye/],
  ['cheeks', /^cheek/],
  ['nose', /^nose/],
  ['jaw', /^jaw/],
  ['mouth', /^mouth/],
];

// Presets start from neutral; only the named weights are set. Names missing from the GLB are skipped.
const PRESETS = {
  smile: { mouthSmile_L: 0.9, mouthSmile_R: 0.9, cheekSquint_L: 0.4, cheekSquint_R: 0.4, eyeSquint_L: 0.25, eyeSquint_R: 0.25 },
  surprise: { browInnerUp_L: 0.9, browInnerUp_R: 0.9, browOuterUp_L: 0.8, browOuterUp_R: 0.8, eyeWide_L: 0.7, eyeWide_R: 0.7, jawOpen: 0.35 },
  blink: { eyeBlink_L: 1, eyeBlink_R: 1 },
};

function el(tag, props = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.appendChild(c);
  return e;
}

async function fetchJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function loadImage(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Camera conversions (the only ones in the page).

// Camera-to-world pose of an OpenGL camera that sees what the OpenCV camera (R, t in cm) sees:
// rotation R^T diag(1, -1, -1), centre -R^T t (metres). Same as frames.opencv_to_opengl_camera.
function fittedPose(R, tCm) {
  const t = tCm.map((x) => x * CM_TO_M);
  const c = [0, 1, 2].map((i) => -(R[0][i] * t[0] + R[1][i] * t[1] + R[2][i] * t[2]));
  const m = new THREE.Matrix4();
  m.set(
    R[0][0], -R[1][0], -R[2][0], c[0],
    R[0][1], -R[1][1], -R[2][1], c[1],
    R[0][2], -R[1][2], -R[2][2], c[2],
    0, 0, 0, 1,
  );
  return m;
}

// OpenGL projection from K for a W x H image (pixel origin at the top-left corner, v down):
// x_ndc = 2u/W - 1, y_ndc = 1 - 2v/H, with u = (fx x + s y)/z + cx, v = fy y/z + cy in OpenCV camera coords.
function fittedProjection(K, W, H, near, far) {
  const [fx, s, cx] = K[0];
  const fy = K[1][1];
  const cy = K[1][2];
  const p = new THREE.Matrix4();
  p.set(
    (2 * fx) / W, (-2 * s) / W, 1 - (2 * cx) / W, 0,
    0, (2 * fy) / H, (2 * cy) / H - 1, 0,
    0, 0, -(far + near) / (far - near), (-2 * far * near) / (far - near),
    0, 0, -1, 0,
  );
  return p;
}

// Fitted lighting: report.lighting as 9 RGB spherical-harmonic radiance coefficients in the head frame, real SH
// basis in three.js order (l,m) = (0,0) (1,-1) (1,0) (1,1) (2,-2) (2,-1) (2,0) (2,1) (2,2). Accepted shapes:
// {sh: [[r,g,b] x 9]}, [[r,g,b] x 9], 27 numbers, or 9 numbers (grey). Anything else: null (not shown).
function parseSH(lighting) {
  if (!lighting) return null;
  let c = Array.isArray(lighting) ? lighting : (lighting.sh ?? lighting.sh_rgb ?? lighting.coefficients ?? null);
  if (!Array.isArray(c)) return null;
  c = c.flat(2);
  if (!c.every((x) => typeof x === 'number' && Number.isFinite(x))) return null;
  if (c.length === 9) c = c.flatMap((x) => [x, x, x]);
  if (c.length !== 27) return null;
  const sh = new THREE.SphericalHarmonics3();
  for (let i = 0; i < 9; i++) sh.coefficients[i].set(c[3 * i], c[3 * i + 1], c[3 * i + 2]);
  return sh;
}

// Detector landmarks: [[x, y, z], ...] in pixels, or normalised to [0, 1] (MediaPipe's own output) - told apart
// by their range, since a face's landmarks in pixels never all lie within the first 1.5 pixels.
function landmarkPixels(pts, W, H) {
  if (!Array.isArray(pts) || !pts.length) return [];
  const xy = pts.map((p) => [Number(p[0]), Number(p[1])]);
  const normalised = xy.every(([x, y]) => Math.abs(x) <= 1.5 && Math.abs(y) <= 1.5);
  return normalised ? xy.map(([x, y]) => [x * W, y * H]) : xy;
}

// ---------------------------------------------------------------------------------------------------------------

export async function showViewer(main, site, item) {
  document.getElementById('subtitle').textContent = item.name;
  document.title = `facetwin — ${item.name}`;
  main.replaceChildren();
  main.className = 'viewer-main';

  const report = item.report ? await fetchJSON(item.report) : null;

  // ---- DOM -----------------------------------------------------------------------------------------------------
  const stage = el('div', { id: 'stage' });
  const photo = el('img', { id: 'photo', alt: 'input photo', hidden: true });
  const canvas = el('canvas', { id: 'gl' });
  const svgNS = 'http://www.w3.org/2000/svg';
  const dots = document.createElementNS(svgNS, 'svg');
  dots.id = 'dots';
  dots.setAttribute('preserveAspectRatio', 'none');
  dots.style.display = 'none';
  stage.append(photo, canvas, dots);
  const side = el('aside', { id: 'side' });
  main.append(stage, side);

  // ---- three.js ------------------------------------------------------------------------------------------------
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ canvas, antialias: true, alpha: true, preserveDrawingBuffer: true });
  } catch (e) {
    throw new Error(`WebGL is not available in this browser: ${e.message || e}`);
  }
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));

  const scene = new THREE.Scene();
  const freeCam = new THREE.PerspectiveCamera(25, 1, 0.01, 100);

  // Neutral studio light: soft hemisphere, a key from upper left front, a fill from the right, a rim behind.
  const studio = new THREE.Group();
  studio.add(new THREE.HemisphereLight(0xffffff, 0x50505a, 1.0));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  key.position.set(-0.5, 0.6, 1.0);
  const fill = new THREE.DirectionalLight(0xffffff, 0.7);
  fill.position.set(0.8, 0.1, 0.6);
  const rim = new THREE.DirectionalLight(0xffffff, 0.6);
  rim.position.set(0.0, 0.5, -1.0);
  studio.add(key, fill, rim);
  scene.add(studio);
  const fittedSH = parseSH(report?.lighting);
  const probe = fittedSH ? new THREE.LightProbe(fittedSH, 0.0) : null;
  if (probe) scene.add(probe);
  const studioIntensity = new Map();
  studio.traverse((l) => { if (l.isLight) studioIntensity.set(l, l.intensity); });
  // Switching lights by intensity, not visibility, keeps the light count and so the compiled shaders.
  function setLighting(v) {
    for (const [l, i] of studioIntensity) l.intensity = v === 'studio' ? i : 0;
    if (probe) probe.intensity = v === 'fitted' ? 1.0 : 0.0;
  }

  const gltf = await new GLTFLoader().loadAsync(item.glb);
  const root = gltf.scene;
  scene.add(root);
  root.updateMatrixWorld(true);

  // The fitted camera: report.json's K, R, t; for a lone GLB, the exporter's "fitted_camera" node (its pose,
  // and the exact K and image size it keeps in extras).
  const cam = report?.camera ?? null;
  let K = null;
  let W = 0;
  let H = 0;
  let pose = null;
  let cameraSource = null;
  if (cam && cam.K && cam.R && cam.t && cam.width && cam.height) {
    [K, W, H, pose, cameraSource] = [cam.K, cam.width, cam.height, fittedPose(cam.R, cam.t), 'report.json'];
  } else {
    const gc = gltf.cameras.find((c) => c.userData?.K_px && c.userData?.image_size_px);
    if (gc) {
      gc.updateMatrixWorld(true);
      [K, [W, H], pose, cameraSource] = [gc.userData.K_px, gc.userData.image_size_px, gc.matrixWorld.clone(), 'GLB'];
    }
  }
  const hasCamera = pose !== null;
  const fitCam = new THREE.PerspectiveCamera();
  fitCam.matrixAutoUpdate = false;
  if (hasCamera) {
    fitCam.matrix.copy(pose);
    fitCam.matrixWorldNeedsUpdate = true;
    fitCam.updateMatrixWorld(true);
    fitCam.projectionMatrix.copy(fittedProjection(K, W, H, NEAR_M, FAR_M));
    fitCam.projectionMatrixInverse.copy(fitCam.projectionMatrix).invert();
  }
  const meshes = [];
  root.traverse((o) => { if (o.isMesh) meshes.push(o); });
  const morphMeshes = meshes.filter((m) => m.morphTargetInfluences && m.morphTargetDictionary);

  // Target names: mesh.extras.targetNames (GLTFLoader fills morphTargetDictionary from it); else the dictionary.
  const gltfMesh = gltf.parser.json.meshes?.[0];
  let names = gltfMesh?.extras?.targetNames;
  if (!Array.isArray(names)) {
    const d = morphMeshes[0]?.morphTargetDictionary ?? {};
    names = Object.keys(d).sort((a, b) => d[a] - d[b]);
  }
  names = names.slice();
  const fitted = {};
  const gw = gltfMesh?.weights;
  names.forEach((n, i) => {
    fitted[n] = Array.isArray(gw) ? gw[i] ?? 0 : (report?.expression_weights?.[n] ?? 0);
  });
  const weights = { ...fitted };

  const originals = new Map(meshes.map((m) => [m, m.material]));
  // Any textured material (the exporter textures the eyes and lashes; skin albedo when the pipeline makes one).
  const hasTexture = meshes.some((m) => (Array.isArray(m.material) ? m.material : [m.material]).some((x) => x.map));
  const skinTextured = meshes.some((m) => /^M_(Face|BackHead)$/.test(m.material?.name ?? '') && m.material.map);
  const unlit = new Map();
  function unlitOf(m) {
    if (!unlit.has(m)) {
      const o = originals.get(m);
      const conv = (x) => new THREE.MeshBasicMaterial({
        map: x.map ?? null, color: x.color ?? new THREE.Color(1, 1, 1), side: x.side, transparent: x.transparent,
        opacity: x.opacity, alphaTest: x.alphaTest, depthWrite: x.depthWrite,
      });
      unlit.set(m, Array.isArray(o) ? o.map(conv) : conv(o));
    }
    return unlit.get(m);
  }

  const box = new THREE.Box3().setFromObject(root);
  const centre = box.getCenter(new THREE.Vector3());
  const size = box.getSize(new THREE.Vector3());
  const controls = new OrbitControls(freeCam, canvas);
  controls.enableDamping = false;
  controls.screenSpacePanning = true;

  const state = {
    view: 'free', // 'free' | 'fitted'
    meshOpacity: 1,
    wireframe: false,
    lighting: 'studio', // 'studio' | 'fitted'
    texture: 'shaded', // 'shaded' | 'albedo'
    lm68: false,
    lm478: false,
  };

  function resetView() {
    const radius = 0.5 * Math.max(size.x, size.y, size.z);
    const dist = radius / Math.sin(THREE.MathUtils.degToRad(freeCam.fov / 2)) * 1.05;
    freeCam.position.set(centre.x, centre.y, centre.z + dist);
    freeCam.near = dist / 100;
    freeCam.far = dist * 100;
    freeCam.updateProjectionMatrix();
    controls.target.copy(centre);
    controls.update();
    setView('free');
  }

  // ---- layout and drawing ----------------------------------------------------------------------------------
  let rect = { x: 0, y: 0, w: 1, h: 1 };
  function layout() {
    const sw = Math.max(1, stage.clientWidth);
    const sh = Math.max(1, stage.clientHeight);
    if (state.view === 'fitted') {
      const s = Math.min(sw / W, sh / H);
      rect = { w: Math.round(W * s), h: Math.round(H * s) };
      rect.x = Math.round((sw - rect.w) / 2);
      rect.y = Math.round((sh - rect.h) / 2);
    } else {
      rect = { x: 0, y: 0, w: sw, h: sh };
    }
    for (const e of [canvas, photo, dots]) {
      e.style.left = `${rect.x}px`;
      e.style.top = `${rect.y}px`;
      e.style.width = `${rect.w}px`;
      e.style.height = `${rect.h}px`;
    }
    renderer.setSize(rect.w, rect.h, false);
    freeCam.aspect = rect.w / rect.h;
    freeCam.updateProjectionMatrix();
  }

  function currentCamera() {
    return state.view === 'fitted' ? fitCam : freeCam;
  }

  function renderNow() {
    scene.background = state.view === 'fitted' ? null : new THREE.Color(BACKGROUND);
    renderer.setClearColor(BACKGROUND, state.view === 'fitted' ? 0 : 1);
    renderer.render(scene, currentCamera());
  }
  let pending = false;
  function requestRender() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      renderNow();
    });
  }
  controls.addEventListener('change', requestRender);
  new ResizeObserver(() => { layout(); renderNow(); }).observe(stage);

  // ---- state changes -----------------------------------------------------------------------------------------
  const sliders = {};
  // Sets one weight and its slider; the frame is drawn on the next animation frame (snapshot() draws at once).
  function setWeight(name, w) {
    if (!(name in weights)) throw new Error(`unknown morph target: ${name}`);
    const v = Math.min(1, Math.max(0, Number(w)));
    weights[name] = v;
    for (const m of morphMeshes) {
      const i = m.morphTargetDictionary[name];
      if (i !== undefined) m.morphTargetInfluences[i] = v;
    }
    const s = sliders[name];
    if (s) {
      s.input.value = String(v);
      s.out.textContent = v.toFixed(2);
    }
  }
  function setExpression(name, w) {
    setWeight(name, w);
    requestRender();
  }
  function setAll(ws) {
    for (const n of names) setWeight(n, ws[n] ?? 0);
    requestRender();
  }
  function applyPreset(p) {
    if (p === 'neutral') setAll({});
    else if (p === 'fitted') setAll(fitted);
    else if (PRESETS[p]) setAll(PRESETS[p]);
    else throw new Error(`unknown preset: ${p}`);
  }

  function applyMaterials() {
    for (const m of meshes) {
      m.material = state.texture === 'albedo' ? unlitOf(m) : originals.get(m);
      for (const x of Array.isArray(m.material) ? m.material : [m.material]) {
        x.wireframe = state.wireframe;
        x.needsUpdate = true;
      }
    }
  }

  function setView(v) {
    if (v === 'fitted' && !hasCamera) throw new Error('this result has no fitted camera');
    state.view = v;
    controls.enabled = v === 'free';
    photo.hidden = !(v === 'fitted' && photoOk);
    canvas.style.opacity = v === 'fitted' ? String(state.meshOpacity) : '1';
    dots.style.display = v === 'fitted' && (state.lm68 || state.lm478) ? '' : 'none';
    ui.fittedBtn?.classList.toggle('on', v === 'fitted');
    layout();
    requestRender();
  }

  // ---- landmarks as dots (image pixels, over the photo) ----------------------------------------------------
  const lm68 = hasCamera ? landmarkPixels(report?.landmarks68, W, H) : [];
  const sel = Number.isInteger(report?.selected_face) ? report.selected_face : 0;
  const lm478 = hasCamera ? landmarkPixels(report?.faces?.[sel]?.landmarks478, W, H) : [];
  if (hasCamera) dots.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const dotR = Math.max(W, H) / 300;
  function dotGroup(pts, cls, r) {
    const g = document.createElementNS(svgNS, 'g');
    g.setAttribute('class', cls);
    for (const [x, y] of pts) {
      const c = document.createElementNS(svgNS, 'circle');
      c.setAttribute('cx', x);
      c.setAttribute('cy', y);
      c.setAttribute('r', r);
      g.appendChild(c);
    }
    dots.appendChild(g);
    return g;
  }
  const g478 = dotGroup(lm478, 'lm478', dotR * 0.6);
  const g68 = dotGroup(lm68, 'lm68', dotR);
  function updateDots() {
    g68.style.display = state.lm68 ? '' : 'none';
    g478.style.display = state.lm478 ? '' : 'none';
    if ((state.lm68 || state.lm478) && state.view !== 'fitted' && hasCamera) setView('fitted');
    dots.style.display = state.view === 'fitted' && (state.lm68 || state.lm478) ? '' : 'none';
  }

  // ---- photo ---------------------------------------------------------------------------------------------------
  let photoOk = false;
  let photoImg = null;
  if (hasCamera && item.photo) {
    photoImg = await loadImage(item.photo);
    photoOk = !!photoImg;
    if (photoOk) photo.src = photoImg.src;
  }

  // ---- side panel ------------------------------------------------------------------------------------------
  const ui = {};
  function section(title, open = true) {
    const d = el('details', { open, class: 'section' }, [el('summary', { text: title })]);
    side.appendChild(d);
    return d;
  }
  function button(label, onClick, id) {
    const b = el('button', { type: 'button', text: label });
    if (id) b.id = id;
    b.addEventListener('click', onClick);
    return b;
  }
  function checkbox(label, id, onChange, disabled = false) {
    const i = el('input', { type: 'checkbox', id, disabled });
    i.addEventListener('change', () => onChange(i.checked));
    return el('label', { class: disabled ? 'row disabled' : 'row' }, [i, el('span', { text: ` ${label}` })]);
  }
  function radios(name, options, current, onChange) {
    const wrap = el('div', { class: 'radios' });
    for (const [value, label, disabled] of options) {
      const i = el('input', { type: 'radio', name, value, checked: value === current, disabled: !!disabled });
      i.id = `${name}-${value}`;
      i.addEventListener('change', () => { if (i.checked) onChange(value); });
      wrap.appendChild(el('label', { class: disabled ? 'disabled' : '' }, [i, el('span', { text: ` ${label}` })]));
    }
    return wrap;
  }

  const sView = section('View');
  ui.fittedBtn = button('fitted camera', () => setView(state.view === 'fitted' ? 'free' : 'fitted'), 'btn-fitted');
  ui.fittedBtn.disabled = !hasCamera;
  ui.fittedBtn.title = hasCamera ? `camera from ${cameraSource}` : 'no fitted camera in report.json or the GLB';
  sView.append(el('div', { class: 'buttons' }, [
    button('reset view', () => resetView(), 'btn-reset-view'),
    ui.fittedBtn,
    button('save screenshot', () => saveScreenshot(), 'btn-screenshot'),
  ]));
  const opacity = el('input', { type: 'range', min: 0, max: 1, step: 0.01, value: 1, id: 'mesh-opacity' });
  opacity.addEventListener('input', () => {
    state.meshOpacity = Number(opacity.value);
    if (state.view === 'fitted') canvas.style.opacity = String(state.meshOpacity);
  });
  sView.append(el('label', { class: 'row' + (hasCamera ? '' : ' disabled') }, [
    el('span', { text: 'mesh opacity' }), opacity,
  ]));
  opacity.disabled = !hasCamera;
  sView.append(checkbox('wireframe', 'wireframe', (v) => { state.wireframe = v; applyMaterials(); requestRender(); }));
  sView.append(checkbox(`68 landmarks (fit)${lm68.length ? '' : ' – none'}`, 'show-lm68',
    (v) => { state.lm68 = v; updateDots(); }, !lm68.length));
  sView.append(checkbox(`detector landmarks${lm478.length ? ` (${lm478.length})` : ' – none'}`, 'show-lm478',
    (v) => { state.lm478 = v; updateDots(); }, !lm478.length));
  sView.append(el('div', { class: 'label', text: 'lighting' }));
  sView.append(radios('lighting', [['studio', 'studio'], ['fitted', 'fitted (SH)', !probe]], state.lighting, (v) => {
    state.lighting = v;
    setLighting(v);
    requestRender();
  }));
  sView.append(el('div', { class: 'label', text: 'surface' }));
  sView.append(radios('texture', [['shaded', 'shaded'], ['albedo', 'albedo only (unlit)']], state.texture,
    (v) => { state.texture = v; applyMaterials(); requestRender(); }));

  const sExpr = section('Expressions');
  sExpr.append(el('div', { class: 'buttons' }, [
    ...['neutral', 'fitted', 'smile', 'surprise', 'blink'].map((p) => button(p, () => applyPreset(p), `preset-${p}`)),
    button('reset', () => applyPreset('fitted'), 'btn-reset-expr'),
  ]));
  const grouped = new Map([...GROUPS.map(([g]) => [g, []]), ['other', []]]);
  for (const n of names) {
    const g = GROUPS.find(([, re]) => re.test(n))?.[0] ?? 'other';
    grouped.get(g).push(n);
  }
  for (const [g, ns] of grouped) {
    if (!ns.length) continue;
    const d = el('details', { class: 'group', open: g === 'jaw' || g === 'mouth' }, [
      el('summary', { text: `${g} (${ns.length})` }),
    ]);
    d.dataset.group = g;
    for (const n of ns) {
      const input = el('input', { type: 'range', min: 0, max: 1, step: 0.01, value: weights[n] });
      input.dataset.target = n;
      input.setAttribute('aria-label', n);
      const out = el('output', { text: Number(weights[n]).toFixed(2) });
      input.addEventListener('input', () => setExpression(n, Number(input.value)));
      sliders[n] = { input, out };
      d.appendChild(el('label', { class: 'slider' }, [el('span', { class: 'sname', text: n }), input, out]));
    }
    sExpr.appendChild(d);
  }

  const sNum = section('Numbers');
  const rows = [];
  const add = (k, v) => rows.push(el('tr', {}, [el('th', { text: k }), el('td', { text: String(v) })]));
  const fmt = (x) => (typeof x === 'number' ? String(Number(x.toPrecision(4))) : String(x));
  if (report) {
    const inp = report.input ?? {};
    if (inp.width) add('photo', `${inp.width} × ${inp.height} px`);
    if (Array.isArray(report.faces)) add('faces found', report.faces.length);
    const face = report.faces?.[sel];
    if (face?.score !== undefined) add(`face ${sel} score`, fmt(face.score));
    const pose = report.head_pose_deg;
    if (pose && typeof pose === 'object') {
      add('head pose (°)', Object.entries(pose).map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(', '));
    }
    // Per-stage seconds; "total" (wall clock, if the pipeline wrote it) else their sum.
    const tm = report.timings ?? {};
    let sum = 0;
    for (const [k, v] of Object.entries(tm)) {
      if (typeof v === 'number' && k !== 'total') { add(`${k} (s)`, v.toFixed(2)); sum += v; }
    }
    if (Object.keys(tm).length) add('total (s)', (typeof tm.total === 'number' ? tm.total : sum).toFixed(2));
    const flat = (o, p = '') => Object.entries(o ?? {}).forEach(([k, v]) => {
      if (v && typeof v === 'object' && !Array.isArray(v)) flat(v, `${p}${k}.`);
      else if (typeof v === 'number') add(`fit ${p}${k}`, fmt(v));
    });
    flat(report.fit);
    if (report.facetwin_version) add('facetwin', report.facetwin_version);
  } else {
    add('report', 'none (GLB only)');
  }
  let nv = 0;
  let nt = 0;
  for (const m of meshes) {
    nv += m.geometry.attributes.position.count;
    nt += (m.geometry.index ? m.geometry.index.count : m.geometry.attributes.position.count) / 3;
  }
  add('vertices (GPU)', nv);
  add('triangles', nt);
  add('morph targets', names.length);
  add('skin texture', skinTextured ? 'yes' : 'none (base colour)');
  if (site.three) add('three.js', site.three);
  sNum.appendChild(el('table', { id: 'numbers' }, rows));
  if (item.summary && Object.keys(item.summary).length) sNum.title = cardNumbers(item.summary);

  // ---- screenshots -------------------------------------------------------------------------------------------
  // Render the current view at exactly width x height into the canvas, read it back as PNG, restore.
  function snapshot({ width, height } = {}) {
    const w = Math.round(width ?? (state.view === 'fitted' ? W : canvas.width));
    const h = Math.round(height ?? (state.view === 'fitted' ? H : canvas.height));
    const pr = renderer.getPixelRatio();
    renderer.setPixelRatio(1);
    renderer.setSize(w, h, false);
    const aspect = freeCam.aspect;
    freeCam.aspect = w / h;
    freeCam.updateProjectionMatrix();
    renderNow();
    const url = canvas.toDataURL('image/png');
    renderer.setPixelRatio(pr);
    freeCam.aspect = aspect;
    layout();
    requestRender();
    return url;
  }

  async function composite() {
    renderNow();
    const out = document.createElement('canvas');
    out.width = canvas.width;
    out.height = canvas.height;
    const ctx = out.getContext('2d');
    if (state.view === 'fitted' && photoOk) {
      ctx.drawImage(photoImg, 0, 0, out.width, out.height);
      ctx.globalAlpha = state.meshOpacity;
    }
    ctx.drawImage(canvas, 0, 0);
    ctx.globalAlpha = 1;
    if (state.view === 'fitted') {
      const sx = out.width / W;
      const sy = out.height / H;
      const draw = (pts, colour, r) => {
        ctx.fillStyle = colour;
        for (const [x, y] of pts) {
          ctx.beginPath();
          ctx.arc(x * sx, y * sy, r, 0, 2 * Math.PI);
          ctx.fill();
        }
      };
      if (state.lm478) draw(lm478, '#35d0ff', 1.2);
      if (state.lm68) draw(lm68, '#ff3b5c', 2.5);
    }
    return out;
  }

  async function saveScreenshot() {
    const out = await composite();
    const blob = await new Promise((resolve) => out.toBlob(resolve, 'image/png'));
    const a = el('a', { href: URL.createObjectURL(blob), download: `${item.name.replace(/[^\w.-]+/g, '_') || 'facetwin'}.png` });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  // Project world points (metres; the head frame when the GLB's node is at the origin) through the fitted
  // camera to pixels of the W x H photo.
  function project(pointsM) {
    if (!hasCamera) return null;
    fitCam.updateMatrixWorld(true);
    return pointsM.map(([x, y, z]) => {
      const v = new THREE.Vector3(x, y, z).project(fitCam);
      return [((v.x + 1) / 2) * W, ((1 - v.y) / 2) * H];
    });
  }

  // World positions (metres) of ICT vertices, with the current expression applied on the CPU the way the GPU
  // does it (Mesh.getVertexPosition). Needs the exporter's _ICT_VERTEX_ID attribute; null without it.
  let byIctId = null;
  function vertexPositions(ids) {
    if (byIctId === null) {
      byIctId = new Map();
      for (const m of meshes) {
        const a = m.geometry.attributes._ict_vertex_id;
        if (!a) continue;
        for (let i = 0; i < a.count; i++) {
          const id = Math.round(a.getX(i));
          if (!byIctId.has(id)) byIctId.set(id, [m, i]);
        }
      }
    }
    if (!byIctId.size) return null;
    root.updateMatrixWorld(true);
    return ids.map((id) => {
      const hit = byIctId.get(id);
      if (!hit) return null;
      const [m, i] = hit;
      return m.getVertexPosition(i, new THREE.Vector3()).applyMatrix4(m.matrixWorld).toArray();
    });
  }

  // ---- start -------------------------------------------------------------------------------------------------
  applyMaterials();
  updateDots();
  resetView();
  layout();
  renderNow();

  window.facetwin = {
    ready: true,
    mode: 'viewer',
    error: null,
    result: item.id,
    morphTargetNames: names.slice(),
    fittedWeights: { ...fitted },
    imageSize: hasCamera ? [W, H] : null,
    hasPhoto: photoOk,
    hasTexture,
    skinTextured,
    hasFittedLighting: !!probe,
    state,
    setExpression,
    getExpression: () => ({ ...weights }),
    applyPreset,
    setView,
    resetView,
    cameraSource,
    project,
    vertexPositions,
    projectVertices: (ids) => {
      const p = vertexPositions(ids);
      return p && hasCamera ? project(p) : null;
    },
    // Points on the surface, each given by 3 ICT vertex ids and barycentric weights (report.json's
    // landmarks68_surface): the posed points are blended in 3D, then projected, as the pipeline does.
    projectSurfacePoints: (vertexIds, bary) => {
      const p = vertexPositions(vertexIds.flat());
      if (!p || !hasCamera || p.some((x) => x === null)) return null;
      const pts = vertexIds.map((_, k) => [0, 1, 2].map((axis) =>
        bary[k][0] * p[3 * k][axis] + bary[k][1] * p[3 * k + 1][axis] + bary[k][2] * p[3 * k + 2][axis]));
      return project(pts);
    },
    snapshot,
    composite: async () => (await composite()).toDataURL('image/png'),
    setOption(k, v) {
      const input = document.getElementById(k);
      if (!input) throw new Error(`no option ${k}`);
      input.checked = !!v;
      input.dispatchEvent(new Event('change'));
    },
  };
}
