// Gallery: one card per result (overlay thumbnail, name, key numbers); thumbnails load when scrolled into view.

function fmt(x, digits = 2) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits).replace(/\.?0+$/, '') : '–';
}

// The one or two fit numbers worth showing on a card: a residual in pixels if there is one, else the first.
function fitLine(fit) {
  const keys = Object.keys(fit || {});
  if (!keys.length) return '';
  const rank = (k) => (/resid|rms|err/i.test(k) ? 0 : /px/i.test(k) ? 1 : 2);
  const pick = keys.filter((k) => rank(k) < 2).sort((a, b) => rank(a) - rank(b)).slice(0, 2);
  return (pick.length ? pick : keys.slice(0, 1)).map((k) => `${k} ${fmt(fit[k])}`).join(' · ');
}

export function cardNumbers(s) {
  const parts = [];
  if (s.width && s.height) parts.push(`${s.width}×${s.height}`);
  if (typeof s.faces === 'number') parts.push(`${s.faces} face${s.faces === 1 ? '' : 's'}`);
  if (typeof s.seconds === 'number') parts.push(`${fmt(s.seconds, 1)} s`);
  return parts.join(' · ');
}

export function showGallery(main, site) {
  document.getElementById('subtitle').textContent = `${site.root} — ${site.results.length} results`;
  document.title = `facetwin — ${site.root}`;
  main.replaceChildren();
  main.className = 'gallery-main';

  const tools = document.createElement('div');
  tools.className = 'gallery-tools';
  const filter = document.createElement('input');
  filter.type = 'search';
  filter.placeholder = 'filter by name';
  filter.id = 'filter';
  tools.appendChild(filter);
  main.appendChild(tools);

  const grid = document.createElement('div');
  grid.id = 'grid';
  main.appendChild(grid);

  // Thumbnails get their src only when near the viewport: hundreds of cards cost hundreds of tiny DOM nodes,
  // not hundreds of image downloads.
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      const img = e.target;
      io.unobserve(img);
      img.src = img.dataset.src;
    }
  }, { rootMargin: '400px' });

  const cards = [];
  for (const r of site.results) {
    const a = document.createElement('a');
    a.className = 'card';
    a.href = `/?r=${encodeURIComponent(r.id)}`;
    a.dataset.id = r.id;
    const thumb = document.createElement('div');
    thumb.className = 'thumb';
    if (r.overlay) {
      const img = document.createElement('img');
      img.alt = r.name;
      img.loading = 'lazy';
      img.decoding = 'async';
      img.dataset.src = r.overlay;
      thumb.appendChild(img);
      io.observe(img);
    } else {
      thumb.classList.add('empty');
      thumb.textContent = 'no overlay';
    }
    a.appendChild(thumb);
    const name = document.createElement('div');
    name.className = 'name';
    name.textContent = r.name;
    name.title = r.name;
    a.appendChild(name);
    const nums = document.createElement('div');
    nums.className = 'nums';
    nums.textContent = cardNumbers(r.summary || {});
    a.appendChild(nums);
    const fit = fitLine((r.summary || {}).fit);
    if (fit) {
      const f = document.createElement('div');
      f.className = 'nums';
      f.textContent = fit;
      a.appendChild(f);
    }
    grid.appendChild(a);
    cards.push(a);
  }

  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const c of cards) c.hidden = q !== '' && !c.dataset.id.toLowerCase().includes(q);
  });

  window.facetwin = {
    ready: true,
    mode: 'gallery',
    error: null,
    results: site.results.map((r) => r.id),
    loadedThumbnails: () => [...grid.querySelectorAll('img')].filter((i) => i.getAttribute('src')).length,
  };
}
