// Live updates of the b24queue pages: every 2 s the page's JSON
// (?format=json) is fetched; elements marked data-bind get the value at
// their path as text (data-bind-x, -width, -label set SVG attributes and
// the accessible name); when the JSON's version differs from the page's,
// the page is fetched again and every data-region element is replaced.
// Times in <time data-local> are shown in the browser's time zone.
(function () {
  'use strict';
  var main = document.querySelector('main[data-live]');
  var status = document.getElementById('live-status');
  var every = 2000;
  var busy = false;

  function lookup(obj, path) {
    return path.split('.').reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }

  function localTimes(root) {
    root.querySelectorAll('time[data-local]').forEach(function (el) {
      var t = new Date(el.getAttribute('datetime'));
      if (!isNaN(t)) { el.textContent = t.toLocaleString(); el.title = el.getAttribute('datetime'); }
    });
  }

  function bind(data) {
    var attrs = { 'data-bind-x': 'x', 'data-bind-width': 'width', 'data-bind-label': 'aria-label' };
    document.querySelectorAll('[data-bind]').forEach(function (el) {
      var v = lookup(data, el.getAttribute('data-bind'));
      if (v !== undefined && v !== null && String(v) !== el.textContent) { el.textContent = String(v); }
    });
    Object.keys(attrs).forEach(function (a) {
      document.querySelectorAll('[' + a + ']').forEach(function (el) {
        var v = lookup(data, el.getAttribute(a));
        if (v !== undefined && v !== null) { el.setAttribute(attrs[a], String(v)); }
      });
    });
  }

  function swap() {
    return fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        doc.querySelectorAll('[data-region]').forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (old) { old.replaceWith(document.importNode(fresh, true)); }
        });
        var m = doc.querySelector('main[data-live]');
        if (m) { main.setAttribute('data-version', m.getAttribute('data-version')); }
        localTimes(document);
      });
  }

  function say(text) { if (status) { status.textContent = text; } }

  function tick() {
    if (busy || document.hidden) { return; }
    busy = true;
    var u = new URL(location.href);
    u.searchParams.set('format', 'json');
    fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); })
      .then(function (data) {
        bind(data);
        say('Updated ' + new Date().toLocaleTimeString() + '; updates live every 2 seconds.');
        if (data.version !== undefined && data.version !== main.getAttribute('data-version')) { return swap(); }
      })
      .catch(function (e) { say('Live updates paused: ' + e.message + '. Retrying.'); })
      .then(function () { busy = false; });
  }

  // The retry button posts with fetch and says what happened, then the
  // page catches up at once.
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.matches || !form.matches('form[data-retry]')) { return; }
    ev.preventDefault();
    var button = form.querySelector('button');
    var out = document.getElementById('retry-status');
    button.disabled = true;
    fetch(form.action, { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { throw new Error(res.body.error || 'refused'); }
        out.textContent = 'Retried ' + res.body.retried + ' item(s); ' + res.body.enqueued + ' queued now, the others after their parent.';
      })
      .catch(function (e) { out.textContent = 'Retry failed: ' + e.message; button.disabled = false; })
      .then(function () { busy = false; tick(); });
  });

  localTimes(document);
  if (main) { setInterval(tick, every); }
}());
