// The todolist page. Everything it shows of lists and tasks comes from
// live collections of @restlive/client (web/lib/restlive-client, built from
// client/src): the open list's tasks, with the filters as query parameters,
// and each list shown, one collection per list. A collection loads with a
// snapshot and, after a reconnect or a resync, resumes from the last change
// it applied, so the page never refetches tasks. REST is for writes, and
// for the index of the lists the user can see, which no subscription
// offers (there is no group of "every list").
import { LiveClient } from './lib/restlive-client/index.js';

const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

// For the browser test and the curious (console): what the collections
// received, by cause, and how often the page asked REST for the index.
const stats = { snapshot: 0, resume: 0, broadcast: 0, indexLoads: 0, opens: 0 };
window.__restliveStats = stats;

// --- session ---------------------------------------------------------------

// The token authenticates REST calls. The WebSocket relies on the session
// cookie that /api/auth/login sets (shared by every tab, as localStorage
// is).
const session = { token: null, username: null, userId: null };

function readSession() {
  Object.assign(session, {
    token: localStorage.getItem('todolist.token'),
    username: localStorage.getItem('todolist.username'),
    userId: Number(localStorage.getItem('todolist.userId')) || null,
  });
}

// The token is written, and removed, last: other tabs follow a change of
// it (the storage event), and must then read the rest as it now is.
function saveSession({ token, username, userId }) {
  Object.assign(session, { token, username, userId: userId ?? null });
  localStorage.setItem('todolist.username', username);
  if (userId != null) localStorage.setItem('todolist.userId', String(userId));
  else localStorage.removeItem('todolist.userId');
  localStorage.setItem('todolist.token', token);
}

function forgetSession() {
  Object.assign(session, { token: null, username: null, userId: null });
  for (const key of ['todolist.username', 'todolist.userId', 'todolist.token']) localStorage.removeItem(key);
}

// --- REST ------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, data) {
    super(`HTTP ${status}`);
    this.status = status;
    this.data = data;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (session.token) headers.Authorization = `Token ${session.token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (res.status === 401 && headers.Authorization) {
    // The server no longer knows the stored token (a new database, or a
    // logout elsewhere): carry on anonymously, as the server would treat a
    // visitor.
    forgetSession();
    identityChanged();
    showMessage('Your session has ended; log in again to see your own lists.');
    if (method === 'GET') return api(method, path, body);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// getAll returns every instance of a paginated list endpoint, following
// "next". Only its path is followed: the server builds it from the Host it
// was asked for, which behind a proxy may not be the page's origin.
async function getAll(path) {
  const items = [];
  for (let next = path, pages = 0; next; pages++) {
    if (pages === 1000) throw new Error(`${path}: more than 1,000 pages`);
    const data = await api('GET', next);
    if (Array.isArray(data)) return data; // a server that does not paginate
    items.push(...(data?.results ?? []));
    next = data?.next ? pathOf(data.next) : null;
  }
  return items;
}

function pathOf(url) {
  const u = new URL(url, location.href);
  return u.pathname + u.search;
}

// describeError turns an API error body (field errors or a detail message)
// into one readable sentence.
function describeError(err) {
  if (!(err instanceof ApiError)) return err?.message || String(err);
  const parts = [];
  const walk = (value, prefix) => {
    if (Array.isArray(value)) {
      if (value.every((v) => typeof v !== 'object' || v === null)) {
        parts.push(prefix ? `${prefix}: ${value.join(' ')}` : value.join(' '));
      } else value.forEach((v) => walk(v, prefix));
    } else if (value && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        const generic = ['detail', 'error', 'errors', 'message', 'non_field_errors'].includes(key);
        walk(v, generic ? prefix : key);
      }
    } else if (value !== null && value !== undefined && value !== '') {
      parts.push(prefix ? `${prefix}: ${value}` : String(value));
    }
  };
  if (err.data && typeof err.data === 'object') walk(err.data, '');
  if (parts.length) return parts.join('; ');
  const fallback = {
    401: 'Please log in first.',
    403: 'You are not allowed to do that.',
    404: 'Not found: it may have been deleted, or be private.',
  };
  return fallback[err.status] || `The server answered ${err.status}.`;
}

// --- messages --------------------------------------------------------------

let messageTimer = null;

function showMessage(text, { error = true } = {}) {
  const box = byTestId('message');
  box.querySelector('.notice-text').textContent = text;
  box.classList.toggle('info', !error);
  box.hidden = false;
  clearTimeout(messageTimer);
  if (!error) messageTimer = setTimeout(() => (box.hidden = true), 5000);
}

function hideMessage() {
  byTestId('message').hidden = true;
}

// --- state -----------------------------------------------------------------

const client = new LiveClient({ url: '/ws/subscribe/' });

const state = {
  // The lists shown, by id: the collection of each (a retrieve with a
  // snapshot holds zero or one instance: the list, or nothing once it is
  // deleted or hidden from this user), and the index's copy, shown until
  // the collection has loaded.
  lists: new Map(), // id -> { collection, loaded, fromIndex, shown }
  indexLoaded: false,
  currentId: null,
  tasks: null, // the collection of the open list's tasks, as filtered
  filters: { search: '', done: '' },
  // Lists this page deleted: their end is no news to show.
  deleted: new Set(),
  // Bumped when the user changes: an index loaded for the one before is
  // not this user's.
  identity: 0,
  everOpen: false,
};

// listOf returns the list id as the page knows it, or undefined when it
// is not visible.
function listOf(id) {
  const entry = state.lists.get(id);
  if (!entry) return undefined;
  return entry.loaded ? entry.collection.get(id) : entry.fromIndex;
}

function visibleLists() {
  return [...state.lists.keys()]
    .map(listOf)
    .filter(Boolean)
    .sort((a, b) => a.id - b.id);
}

function count(cause) {
  stats[cause] = (stats[cause] ?? 0) + 1;
}

// --- lists -----------------------------------------------------------------

// watchList keeps list id current with a live collection of that one list.
function watchList(id, fromIndex) {
  const known = state.lists.get(id);
  if (known) {
    if (fromIndex) {
      known.shown = true;
      if (!known.loaded) known.fromIndex = fromIndex;
    }
    return;
  }
  // shown: the page has shown the list (from the index or its collection),
  // so that its end is news rather than "not available".
  const entry = { collection: null, loaded: false, fromIndex, shown: fromIndex !== undefined };
  entry.collection = client.collection(
    { model: 'todolist.List', value: id },
    {
      // Refused (too many subscriptions on one connection, say) or ended
      // by the server: what it shows stays, no longer live.
      onError: (err) => console.warn(`list ${id} is not live:`, err.code, err.message),
    },
  );
  entry.collection.onChange(({ cause }) => {
    count(cause);
    entry.loaded = true;
    if (state.lists.get(id) !== entry) return;
    if (entry.collection.size === 0) {
      listGone(id, entry.shown);
      return;
    }
    entry.shown = true;
    renderListsAndHeader();
  });
  state.lists.set(id, entry);
}

// listGone forgets list id: deleted, made private, or never visible to
// this user (opened by its address).
function listGone(id, wasShown) {
  state.lists.get(id)?.collection.close();
  state.lists.delete(id);
  if (state.currentId === id) {
    closeList();
    if (state.deleted.has(id)) showMessage('List deleted.', { error: false });
    else if (wasShown) showMessage('This list was deleted, or is no longer visible to you.');
    else showMessage(`List ${id} is not available: it may have been deleted, or be private.`);
  }
  renderListsAndHeader();
}

let indexLoad = null;

// refreshIndex loads the index of the lists the user can see, and watches
// those it did not know. Calls made while one load is pending for the same
// user share it.
function refreshIndex() {
  if (indexLoad?.identity !== state.identity) {
    const identity = state.identity;
    const promise = loadIndex(identity).finally(() => {
      if (indexLoad?.promise === promise) indexLoad = null;
    });
    indexLoad = { identity, promise };
  }
  return indexLoad.promise;
}

async function loadIndex(identity) {
  let lists;
  try {
    lists = await getAll('/api/lists/');
  } catch (err) {
    if (identity === state.identity) showMessage(`Could not load the lists: ${describeError(err)}`);
    return;
  }
  if (identity !== state.identity) return;
  stats.indexLoads++;
  // Only adds: a list leaves when its own collection says it has gone, so
  // an index read a moment before a list was created hides nothing.
  for (const list of lists) watchList(list.id, list);
  state.indexLoaded = true;
  renderListsAndHeader();
}

async function createList(name, isPublic) {
  const list = await api('POST', '/api/lists/', { name, public: isPublic });
  watchList(list.id, list);
  renderListsAndHeader();
  location.hash = `list=${list.id}`;
}

async function updateList(id, fields) {
  await api('PATCH', `/api/lists/${id}/`, fields);
  // The list's collection shows the change when it is broadcast.
}

async function deleteList(id) {
  state.deleted.add(id);
  try {
    await api('DELETE', `/api/lists/${id}/`);
  } catch (err) {
    state.deleted.delete(id);
    throw err;
  }
  // Gone for good: no need to wait for the broadcast to say so.
  listGone(id, true);
}

// --- tasks -----------------------------------------------------------------

function openList(id) {
  if (state.currentId === id) return;
  state.currentId = id;
  watchList(id);
  subscribeTasks();
  cancelRename();
  renderListsAndHeader();
}

// closeList leaves the current list, and its address.
function closeList() {
  state.currentId = null;
  subscribeTasks();
  cancelRename();
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  renderListsAndHeader();
}

// subscribeTasks makes the collection of the open list's tasks, narrowed
// by the filters exactly as GET /api/tasks/?list=&search=&done= would be.
function subscribeTasks() {
  state.tasks?.close();
  state.tasks = null;
  if (state.currentId !== null) {
    const query = {};
    if (state.filters.search) query.search = state.filters.search;
    if (state.filters.done) query.done = state.filters.done;
    const tasks = client.collection(
      { model: 'todolist.Task', groupBy: 'list_id', value: state.currentId, query },
      {
        onError: (err) => {
          if (state.tasks === tasks) showMessage(`Live updates for this list are unavailable (${err.code}: ${err.message}).`);
        },
      },
    );
    tasks.onChange(({ cause }) => {
      count(cause);
      if (state.tasks === tasks) renderTasks();
    });
    state.tasks = tasks;
  }
  renderTasks();
  renderStatus();
}

// The writes go through REST; the tasks' collection shows their result
// when it is broadcast (at once while connected; after it catches up, when
// not), so the page always shows what the server holds.
async function addTask(text) {
  await api('POST', '/api/tasks/', { text, list: state.currentId });
  notLiveNotice();
}

async function updateTask(id, fields) {
  await api('PATCH', `/api/tasks/${id}/`, fields);
  notLiveNotice();
}

async function deleteTask(id) {
  await api('DELETE', `/api/tasks/${id}/`);
  notLiveNotice();
}

function notLiveNotice() {
  if (client.state !== 'open') showMessage('Saved. The page shows it once it is connected again.', { error: false });
}

// --- identity --------------------------------------------------------------

// identityChanged starts again as whoever the session now names: every
// collection anew, from a snapshot. A collection is not resumed across
// users: an offset says where the server's changes stood, not whose they
// were, and a resume sends only what changed since, so it would keep
// showing what the previous user could see.
function identityChanged({ reconnect = true } = {}) {
  state.identity++;
  renderAccount();
  // Dropped first, so that the old collections' unsubscribes are not sent
  // on a socket that is going anyway.
  if (reconnect) client.reconnect();
  for (const entry of state.lists.values()) entry.collection.close();
  state.lists.clear();
  state.indexLoaded = false;
  if (state.currentId !== null) watchList(state.currentId);
  subscribeTasks();
  refreshIndex();
  renderListsAndHeader();
}

async function authenticate(kind, username, password) {
  let userId = null;
  if (kind === 'register') {
    const user = await api('POST', '/api/auth/register', { username, password });
    userId = user.id;
  }
  // Log in after registering too: login is what sets the session cookie the
  // WebSocket authenticates with.
  const res = await api('POST', '/api/auth/login', { username, password });
  saveSession({ token: res.token, username: res.username || username, userId: res.id ?? userId });
  identityChanged();
}

// Set while this page logs out: the 4001 that the logout causes is then no
// news, and the session must not be read back before it is forgotten.
let loggingOut = false;

async function logout() {
  loggingOut = true;
  let failure = null;
  try {
    // With a JSON body, as the server wants of every write (a cross-site
    // form cannot send one); without it, it answers 415 and revokes nothing.
    await api('POST', '/api/auth/logout', {});
  } catch (err) {
    failure = err;
  } finally {
    loggingOut = false;
  }
  // The local session goes either way; but a session the server did not
  // end still authenticates this browser's cookie, and the page says so.
  forgetSession();
  identityChanged();
  if (failure) showMessage(`The server may not have ended your session: ${describeError(failure)}`);
}

// --- connection state ------------------------------------------------------

let syncTimer = null;
let lastInfo = {};

function collections() {
  const all = [...state.lists.values()].map((e) => e.collection);
  if (state.tasks) all.push(state.tasks);
  return all;
}

// renderStatus shows the connection: "live" once every collection has
// caught up on the open socket.
function renderStatus(info = lastInfo) {
  const el = byTestId('connection-status');
  let key = client.state;
  let text;
  let title = '';
  switch (client.state) {
    case 'open': {
      const syncing = collections().some((c) => c.status === 'loading' || c.status === 'syncing');
      key = syncing ? 'syncing' : 'live';
      text = syncing ? 'Catching up…' : 'Live';
      break;
    }
    case 'connecting':
      // An attempt after a loss is still part of reconnecting.
      key = state.everOpen ? 'reconnecting' : 'connecting';
      text = state.everOpen ? 'Disconnected — reconnecting…' : 'Connecting…';
      break;
    case 'reconnecting':
      text = 'Disconnected — reconnecting…';
      title = `Connection closed${info.code ? ` (code ${info.code})` : ''}; next try in ${Math.ceil((info.retryIn ?? 0) / 1000)} s`;
      break;
    case 'failed':
      text = info.code === 4003 ? 'Disconnected — log in to receive live updates' : 'Disconnected — the server refused the connection';
      title = info.error?.message ?? '';
      break;
    default:
      text = 'Offline';
  }
  el.dataset.state = key;
  el.querySelector('.status-text').textContent = text;
  el.title = title;
  // A collection says when it changes, but not when a resume that changed
  // nothing makes it live again: look again shortly while catching up.
  clearTimeout(syncTimer);
  if (key === 'syncing') syncTimer = setTimeout(() => renderStatus(), 150);
}

client.onStateChange((connection, info) => {
  lastInfo = info;
  if (connection === 'open') {
    stats.opens++;
    // Lists others made visible meanwhile are in no collection: only the
    // index finds them. (Everything shown resumes by itself.)
    if (state.everOpen) refreshIndex();
    state.everOpen = true;
  }
  if (connection === 'reconnecting' && info.code === 4001 && !loggingOut) {
    // The server ended this user's sessions (a logout, here or in another
    // tab or browser). The client reconnects as whatever the cookie now
    // says; the page follows the session this browser now holds.
    readSession();
    identityChanged({ reconnect: false });
  }
  renderStatus(info);
});

// --- rendering -------------------------------------------------------------

function renderAccount() {
  const signedIn = Boolean(session.token);
  byTestId('signed-in').hidden = !signedIn;
  byTestId('auth-form').hidden = signedIn;
  byTestId('username').textContent = session.username || '';
  byTestId('new-list-form').hidden = !signedIn;
}

function renderListsAndHeader() {
  renderLists();
  renderListHeader();
  renderMoveTargets();
  renderStatus();
}

function renderLists() {
  const ul = byTestId('lists');
  const lists = visibleLists();
  ul.replaceChildren(
    ...lists.map((list) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = `#list=${list.id}`;
      a.dataset.testid = 'list-link';
      a.dataset.listId = String(list.id);
      a.textContent = list.name;
      if (list.id === state.currentId) a.setAttribute('aria-current', 'page');
      li.append(a);
      if (!list.public) {
        const badge = document.createElement('span');
        badge.className = 'badge private';
        badge.textContent = 'private';
        li.append(badge);
      }
      return li;
    }),
  );
  byTestId('lists-empty').hidden = !state.indexLoaded || lists.length > 0;
}

function renderListHeader() {
  const list = state.currentId === null ? undefined : listOf(state.currentId);
  const open = state.currentId !== null;
  byTestId('list-title').textContent = open ? (list ? list.name : 'Loading…') : 'Pick a list';
  byTestId('list-body').hidden = !open;
  byTestId('no-list').hidden = open;
  const badge = byTestId('list-visibility');
  badge.hidden = !list;
  if (list) {
    badge.textContent = list.public ? 'public' : 'private';
    badge.className = `badge ${list.public ? 'public' : 'private'}`;
  }
  const owner = Boolean(list) && session.userId !== null && list.owner === session.userId;
  byTestId('list-actions').hidden = !owner;
  if (owner) byTestId('toggle-public').textContent = list.public ? 'Make private' : 'Make public';
  if (!owner) cancelRename();
  document.title = list ? `${list.name} · To-do lists` : 'To-do lists · restlive';
}

function renderTasks() {
  const ul = byTestId('tasks');
  const tasks = state.tasks ? [...state.tasks.items].sort((a, b) => a.id - b.id) : [];
  const existing = new Map([...ul.children].map((li) => [Number(li.dataset.taskId), li]));
  // Reuse the item of each task so focus, an edit in progress and pending
  // clicks survive a re-render triggered by somebody else's change.
  let prev = null;
  for (const task of tasks) {
    let li = existing.get(task.id);
    existing.delete(task.id);
    if (!li) li = createTaskItem(task.id);
    updateTaskItem(li, task);
    const want = prev ? prev.nextSibling : ul.firstChild;
    if (li !== want) ul.insertBefore(li, want);
    prev = li;
  }
  for (const li of existing.values()) li.remove();
  // Empty is news only once the collection has loaded.
  const loaded = state.tasks !== null && state.tasks.status !== 'loading';
  byTestId('tasks-empty').hidden = !loaded || tasks.length > 0;
  renderMoveTargets();
}

function createTaskItem(id) {
  const li = document.createElement('li');
  li.dataset.testid = 'task';
  li.dataset.taskId = String(id);
  const label = document.createElement('label');
  label.className = 'task-label';
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.dataset.testid = 'task-done';
  const text = document.createElement('span');
  text.dataset.testid = 'task-text';
  label.append(box, text);
  const edit = document.createElement('button');
  edit.type = 'button';
  edit.className = 'icon';
  edit.dataset.testid = 'task-edit';
  edit.textContent = '✎';
  const move = document.createElement('select');
  move.className = 'move';
  move.dataset.testid = 'task-move';
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'icon danger';
  del.dataset.testid = 'task-delete';
  del.textContent = '×';
  li.append(label, edit, move, del);
  return li;
}

function updateTaskItem(li, task) {
  li.dataset.done = String(Boolean(task.done));
  li.classList.toggle('done', Boolean(task.done));
  const box = byTestId('task-done', li);
  if (box.checked !== Boolean(task.done)) box.checked = Boolean(task.done);
  byTestId('task-text', li).textContent = task.text;
  byTestId('task-edit', li).setAttribute('aria-label', `Edit “${task.text}”`);
  byTestId('task-move', li).setAttribute('aria-label', `Move “${task.text}” to another list`);
  byTestId('task-delete', li).setAttribute('aria-label', `Delete “${task.text}”`);
}

// renderMoveTargets offers, in each task's menu, the other lists shown.
// Rebuilt only when they change, so that an open menu is left alone.
function renderMoveTargets() {
  const targets = visibleLists().filter((l) => l.id !== state.currentId);
  const key = JSON.stringify(targets.map((l) => [l.id, l.name]));
  for (const select of byTestId('tasks').querySelectorAll('[data-testid="task-move"]')) {
    if (select.dataset.key === key) continue;
    select.dataset.key = key;
    const none = new Option(targets.length ? 'Move to…' : 'No other list', '');
    select.replaceChildren(none, ...targets.map((l) => new Option(l.name, String(l.id))));
    select.disabled = targets.length === 0;
  }
}

// --- editing a task's text -------------------------------------------------

function startEdit(li) {
  if (li.querySelector('form')) return;
  const id = Number(li.dataset.taskId);
  const task = state.tasks?.get(id);
  if (!task) return;
  const form = document.createElement('form');
  form.className = 'task-edit grow';
  form.dataset.testid = 'task-edit-form';
  const input = document.createElement('input');
  input.name = 'text';
  input.required = true;
  input.maxLength = 1000;
  input.value = task.text;
  input.dataset.testid = 'task-edit-text';
  input.setAttribute('aria-label', 'Task text');
  form.append(input);
  li.classList.add('editing');
  li.prepend(form);
  input.focus();
  input.select();
  const finish = () => {
    form.remove();
    li.classList.remove('editing');
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || text === state.tasks?.get(id)?.text) return finish();
    input.disabled = true;
    updateTask(id, { text })
      .then(finish)
      .catch((err) => {
        input.disabled = false;
        showMessage(describeError(err));
      });
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') finish();
  });
}

// --- renaming the open list ------------------------------------------------

function startRename() {
  const list = listOf(state.currentId);
  if (!list) return;
  const form = byTestId('rename-list-form');
  form.hidden = false;
  form.elements.name.value = list.name;
  form.elements.name.focus();
  form.elements.name.select();
}

function cancelRename() {
  byTestId('rename-list-form').hidden = true;
}

// --- wiring ----------------------------------------------------------------

function listIdFromHash() {
  const m = /^#list=(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function route() {
  const id = listIdFromHash();
  if (id !== null) openList(id);
  else if (state.currentId !== null) closeList();
}

// busy disables a form's controls while its request runs and reports errors.
async function busy(form, fn) {
  const controls = [...form.elements];
  controls.forEach((c) => (c.disabled = true));
  try {
    hideMessage();
    await fn();
  } catch (err) {
    showMessage(describeError(err));
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}

byTestId('auth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const kind = event.submitter?.value === 'register' ? 'register' : 'login';
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (!username || !password) {
    showMessage('Enter a username and a password.');
    return;
  }
  busy(form, async () => {
    await authenticate(kind, username, password);
    form.reset();
  });
});

byTestId('logout').addEventListener('click', () => logout());

byTestId('new-list-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const name = form.elements.name.value.trim();
  if (!name) return;
  const isPublic = form.elements.public.checked;
  busy(form, async () => {
    await createList(name, isPublic);
    form.reset();
  });
});

byTestId('rename-list').addEventListener('click', startRename);
byTestId('rename-list-cancel').addEventListener('click', cancelRename);
byTestId('rename-list-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const name = form.elements.name.value.trim();
  const id = state.currentId;
  if (!name || id === null) return;
  busy(form, async () => {
    await updateList(id, { name });
    cancelRename();
  });
});

byTestId('toggle-public').addEventListener('click', (event) => {
  const list = listOf(state.currentId);
  if (!list) return;
  const button = event.currentTarget;
  button.disabled = true;
  updateList(list.id, { public: !list.public })
    .catch((err) => showMessage(describeError(err)))
    .finally(() => (button.disabled = false));
});

byTestId('delete-list').addEventListener('click', () => {
  const list = listOf(state.currentId);
  if (!list || !confirm(`Delete the list “${list.name}” and all its tasks?`)) return;
  deleteList(list.id).catch((err) => showMessage(describeError(err)));
});

byTestId('new-task-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const text = form.elements.text.value.trim();
  if (!text || state.currentId === null) return;
  busy(form, async () => {
    await addTask(text);
    form.reset();
  }).then(() => form.elements.text.focus());
});

const tasksList = byTestId('tasks');

tasksList.addEventListener('change', (event) => {
  const target = event.target;
  const li = target.closest('li');
  if (!li) return;
  const id = Number(li.dataset.taskId);
  // Until the broadcast comes, a control shows what the server last said.
  const restore = () => {
    const task = state.tasks?.get(id);
    if (task) updateTaskItem(li, task);
  };
  if (target.dataset.testid === 'task-done') {
    updateTask(id, { done: target.checked }).catch((err) => {
      showMessage(describeError(err));
      restore();
    });
  } else if (target.dataset.testid === 'task-move' && target.value) {
    const list = Number(target.value);
    target.disabled = true;
    updateTask(id, { list })
      .catch((err) => showMessage(describeError(err)))
      .finally(() => {
        target.value = '';
        target.disabled = false;
      });
  }
});

tasksList.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  const li = button?.closest('li');
  if (!li) return;
  if (button.dataset.testid === 'task-edit') {
    startEdit(li);
  } else if (button.dataset.testid === 'task-delete') {
    button.disabled = true;
    deleteTask(Number(li.dataset.taskId)).catch((err) => {
      button.disabled = false;
      showMessage(describeError(err));
    });
  }
});

let searchTimer = null;
function onFilterChange() {
  clearTimeout(searchTimer);
  // Debounced so typing does not resubscribe on every key.
  searchTimer = setTimeout(() => {
    const search = byTestId('task-search').value.trim();
    const done = byTestId('task-filter').value;
    if (search === state.filters.search && done === state.filters.done) return;
    state.filters = { search, done };
    subscribeTasks();
  }, 250);
}
byTestId('task-search').addEventListener('input', onFilterChange);
byTestId('task-filter').addEventListener('change', onFilterChange);

document.querySelector('[data-action="dismiss"]').addEventListener('click', hideMessage);
window.addEventListener('hashchange', route);
// Lists other people create are in no collection, so coming back to the
// tab looks at the index again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refreshIndex();
});
// Another tab logged in or out: this one follows, as its cookie already has.
window.addEventListener('storage', (event) => {
  if (event.key !== null && event.key !== 'todolist.token') return;
  readSession();
  identityChanged();
});

readSession();
renderAccount();
route();
refreshIndex();
renderStatus();

// For poking at the page from the browser console.
window.todolistApp = { client, state, session, stats };
