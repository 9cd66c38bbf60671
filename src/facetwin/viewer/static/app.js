// Entry point: ask the server what it shows, then open the gallery or one result.
// ?r=<id> selects a result of a gallery; a single result or a lone GLB opens directly.

const main = document.getElementById('main');

function fail(msg) {
  window.facetwin = Object.assign(window.facetwin || {}, { ready: false, error: String(msg) });
  main.replaceChildren();
  const p = document.createElement('p');
  p.id = 'message';
  p.className = 'error';
  p.textContent = String(msg);
  main.appendChild(p);
}

async function start() {
  const res = await fetch('/api/results.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`results list: HTTP ${res.status}`);
  const site = await res.json();
  const params = new URLSearchParams(location.search);
  const rid = params.get('r');
  if (site.mode === 'gallery' && rid === null) {
    const { showGallery } = await import('./gallery.js');
    showGallery(main, site);
    return;
  }
  const item = site.results.find((x) => x.id === (rid ?? site.results[0]?.id));
  if (!item) throw new Error(`no result named "${rid}" here`);
  const back = document.getElementById('back');
  back.hidden = site.mode !== 'gallery';
  const { showViewer } = await import('./viewer.js');
  await showViewer(main, site, item);
}

start().catch((e) => {
  console.error(e);
  fail(e.message || e);
});
