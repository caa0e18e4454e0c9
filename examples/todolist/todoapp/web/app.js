// The todolist page: REST for reads and writes, the WebSocket for changes
// made anywhere else. The DOM is rendered from in-memory maps (lists, and
// the tasks of the open list) that REST responses and broadcasts both
// update, so the two paths can never disagree about what is shown.
import { LiveClient, Status } from './live.js';

const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

// --- session ---------------------------------------------------------------

// The token authenticates REST calls. The WebSocket cannot send headers, so
// the socket relies on the session cookie that /api/auth/login sets.
const session = {
  token: localStorage.getItem('todolist.token'),
  username: localStorage.getItem('todolist.username'),
  userId: Number(localStorage.getItem('todolist.userId')) || null,
};

function saveSession({ token, username, userId }) {
  Object.assign(session, { token, username, userId: userId ?? null });
  localStorage.setItem('todolist.token', token);
  localStorage.setItem('todolist.username', username);
  if (userId != null) localStorage.setItem('todolist.userId', String(userId));
  else localStorage.removeItem('todolist.userId');
}

function forgetSession() {
  Object.assign(session, { token: null, username: null, userId: null });
  for (const key of ['todolist.token', 'todolist.username', 'todolist.userId']) localStorage.removeItem(key);
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
    // The server no longer knows the stored token (a new database, say):
    // carry on anonymously, as the server would treat a visitor.
    forgetSession();
    renderAccount();
    showMessage('Your session has ended; log in again to see your own lists.');
    if (method === 'GET') return api(method, path, body);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
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

const asArray = (data) => (Array.isArray(data) ? data : data?.results || []);

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

// --- live connection -------------------------------------------------------

const statusText = {
  [Status.CONNECTING]: 'Connecting…',
  [Status.OPEN]: 'Subscribing…',
  [Status.LIVE]: 'Live',
  [Status.RECONNECTING]: 'Disconnected — reconnecting…',
  [Status.CLOSED]: 'Offline',
};

function showStatus(status, detail) {
  const el = byTestId('connection-status');
  el.dataset.state = status;
  let text = statusText[status] || status;
  if (status === Status.RECONNECTING && detail.code === 4003) {
    text = 'Disconnected — log in to receive live updates';
  }
  el.querySelector('.status-text').textContent = text;
  el.title =
    status === Status.RECONNECTING
      ? `Connection closed${detail.code ? ` (code ${detail.code})` : ''}; next try in ${Math.ceil(detail.retryIn / 1000)} s`
      : '';
}

const live = new LiveClient({ url: '/ws/subscribe/', onStatus: showStatus });

// --- state -----------------------------------------------------------------

const state = {
  lists: new Map(), // id -> list, every list this user can see
  listSubs: new Map(), // id -> subscription to that list by pk
  listsLoaded: false,
  currentId: null,
  tasks: new Map(), // id -> task of the current list (as filtered)
  taskSub: null,
  filters: { search: '', done: '' },
  // Refetch bookkeeping: broadcasts that arrive while a refetch is in flight
  // are replayed on top of its snapshot, so a change committed after the
  // snapshot was taken is not lost when the snapshot replaces the map.
  fetchGen: 0,
  appliedGen: 0,
  inflight: 0,
  seq: 0,
  log: [],
};

// --- lists -----------------------------------------------------------------

let listsRefresh = null;

// refreshLists refetches the lists; calls made while one is pending share it.
function refreshLists() {
  listsRefresh ??= loadLists().finally(() => (listsRefresh = null));
  return listsRefresh;
}

async function loadLists() {
  try {
    const lists = asArray(await api('GET', '/api/lists/'));
    state.lists = new Map(lists.map((l) => [l.id, l]));
    state.listsLoaded = true;
  } catch (err) {
    showMessage(`Could not load the lists: ${describeError(err)}`);
    return;
  }
  if (state.currentId !== null && !state.lists.has(state.currentId)) {
    await ensureCurrentList();
  }
  syncListSubscriptions();
  renderLists();
  renderListHeader();
}

// ensureCurrentList fetches a list opened by its address that the index did
// not include; if it is not visible, the page says so and closes it.
async function ensureCurrentList() {
  const id = state.currentId;
  try {
    const list = await api('GET', `/api/lists/${id}/`);
    if (state.currentId === id) state.lists.set(id, list);
  } catch (err) {
    if (state.currentId !== id) return;
    closeList();
    showMessage(`List ${id} is not available: ${describeError(err)}`);
  }
}

function syncListSubscriptions() {
  for (const [id, sub] of state.listSubs) {
    if (!state.lists.has(id)) {
      sub.close();
      state.listSubs.delete(id);
    }
  }
  for (const id of state.lists.keys()) {
    if (state.listSubs.has(id)) continue;
    const sub = live.subscribe(
      { model: 'todolist.List', value: id },
      {
        onMessage: (action, instance) => applyList(action, instance),
        // Renames or deletions may have been missed while disconnected.
        onLive: ({ reconnected, resync }) => {
          if (reconnected || resync) refreshLists();
        },
      },
    );
    state.listSubs.set(id, sub);
  }
}

function applyList(action, instance) {
  const id = instance.id;
  if (action === 'DELETED') {
    state.lists.delete(id);
    state.listSubs.get(id)?.close();
    state.listSubs.delete(id);
    if (state.currentId === id) {
      closeList();
      showMessage('This list was deleted, or is no longer visible to you.');
    }
  } else {
    state.lists.set(id, { ...state.lists.get(id), ...instance });
  }
  renderLists();
  renderListHeader();
}

async function createList(name, isPublic) {
  const list = await api('POST', '/api/lists/', { name, public: isPublic });
  state.lists.set(list.id, list);
  syncListSubscriptions();
  renderLists();
  location.hash = `list=${list.id}`;
}

async function deleteList(id) {
  await api('DELETE', `/api/lists/${id}/`);
  applyList('DELETED', { id });
}

// --- tasks -----------------------------------------------------------------

function openList(id) {
  if (state.currentId === id) return;
  resetList();
  state.currentId = id;
  if (!state.lists.has(id) && state.listsLoaded) {
    ensureCurrentList().then(() => {
      syncListSubscriptions();
      renderLists();
      renderListHeader();
    });
  }
  subscribeTasks();
  renderLists();
  renderListHeader();
  renderTasks();
}

// closeList leaves the current list, and its address.
function closeList() {
  resetList();
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  renderLists();
  renderListHeader();
  renderTasks();
}

function resetList() {
  state.taskSub?.close();
  state.taskSub = null;
  state.currentId = null;
  state.tasks = new Map();
  state.log = [];
}

function taskQueryParams() {
  const params = {};
  if (state.filters.search) params.search = state.filters.search;
  if (state.filters.done) params.done = state.filters.done;
  return params;
}

// subscribeTasks subscribes to the current list's tasks (with the current
// filters) and fetches them now, then again each time the subscription
// becomes live, because changes made before that were not broadcast to us.
function subscribeTasks() {
  state.taskSub?.close();
  const listId = state.currentId;
  state.taskSub = live.subscribe(
    { model: 'todolist.Task', groupBy: 'list_id', value: listId, queryParams: taskQueryParams() },
    {
      onMessage: (action, instance) => {
        state.seq++;
        if (state.inflight > 0) state.log.push({ seq: state.seq, action, instance });
        applyTask(action, instance);
        renderTasks();
      },
      onLive: () => refetchTasks(),
      onError: ({ code, message }) => {
        showMessage(`Live updates for this list are unavailable (${code}${message ? `: ${message}` : ''}).`);
      },
    },
  );
  refetchTasks();
}

async function refetchTasks() {
  const listId = state.currentId;
  if (listId === null) return;
  const gen = ++state.fetchGen;
  const startSeq = state.seq;
  const query = new URLSearchParams({ list: String(listId), ...taskQueryParams() });
  state.inflight++;
  let tasks;
  try {
    tasks = asArray(await api('GET', `/api/tasks/?${query}`));
  } catch (err) {
    if (state.currentId === listId) showMessage(`Could not load the tasks: ${describeError(err)}`);
    return;
  } finally {
    state.inflight--;
  }
  // A newer snapshot already applied, or the user moved on.
  if (state.currentId !== listId || gen < state.appliedGen) return;
  state.appliedGen = gen;
  state.tasks = new Map(tasks.map((t) => [t.id, t]));
  for (const m of state.log) if (m.seq > startSeq) applyTask(m.action, m.instance);
  if (state.inflight === 0) state.log = [];
  renderTasks();
}

function matchesFilters(task) {
  const { search, done } = state.filters;
  if (done && String(task.done) !== done) return false;
  if (search && !String(task.text).toLowerCase().includes(search.toLowerCase())) return false;
  return true;
}

function applyTask(action, instance) {
  if (action === 'DELETED' || instance.list !== state.currentId || !matchesFilters(instance)) {
    state.tasks.delete(instance.id);
  } else {
    state.tasks.set(instance.id, { ...state.tasks.get(instance.id), ...instance });
  }
}

async function addTask(text) {
  const task = await api('POST', '/api/tasks/', { text, list: state.currentId });
  applyTask('CREATED', task);
  renderTasks();
}

async function setDone(id, done) {
  const task = await api('PATCH', `/api/tasks/${id}/`, { done });
  applyTask('UPDATED', task);
  renderTasks();
}

async function deleteTask(id) {
  await api('DELETE', `/api/tasks/${id}/`);
  applyTask('DELETED', { id });
  renderTasks();
}

// --- rendering -------------------------------------------------------------

function renderAccount() {
  const signedIn = Boolean(session.token);
  byTestId('signed-in').hidden = !signedIn;
  byTestId('auth-form').hidden = signedIn;
  byTestId('username').textContent = session.username || '';
  byTestId('new-list-form').hidden = !signedIn;
}

function renderLists() {
  const ul = byTestId('lists');
  const lists = [...state.lists.values()].sort((a, b) => a.id - b.id);
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
  byTestId('lists-empty').hidden = !state.listsLoaded || lists.length > 0;
}

function renderListHeader() {
  const list = state.lists.get(state.currentId);
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
  const owner = list && session.userId !== null && list.owner === session.userId;
  byTestId('delete-list').hidden = !owner;
  document.title = list ? `${list.name} · To-do lists` : 'To-do lists · restlive';
}

function renderTasks() {
  const ul = byTestId('tasks');
  const tasks = [...state.tasks.values()].sort((a, b) => a.id - b.id);
  const existing = new Map([...ul.children].map((li) => [Number(li.dataset.taskId), li]));
  // Reuse the item of each task so focus and pending clicks survive a
  // re-render triggered by somebody else's change.
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
  byTestId('tasks-empty').hidden = tasks.length > 0 || state.currentId === null;
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
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'icon';
  del.dataset.testid = 'task-delete';
  del.textContent = '×';
  li.append(label, del);
  return li;
}

function updateTaskItem(li, task) {
  li.dataset.done = String(Boolean(task.done));
  li.classList.toggle('done', Boolean(task.done));
  const box = byTestId('task-done', li);
  if (box.checked !== Boolean(task.done)) box.checked = Boolean(task.done);
  byTestId('task-text', li).textContent = task.text;
  byTestId('task-delete', li).setAttribute('aria-label', `Delete “${task.text}”`);
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
    await fn();
    hideMessage();
  } catch (err) {
    showMessage(describeError(err));
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
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
  afterIdentityChange();
}

async function logout() {
  try {
    await api('POST', '/api/auth/logout');
  } catch {
    // Nothing to undo: the local session goes either way.
  }
  forgetSession();
  afterIdentityChange();
}

// afterIdentityChange reconnects the socket (it authenticated as whoever
// held the cookie when it opened) and reloads what this user can see.
function afterIdentityChange() {
  renderAccount();
  live.reconnect();
  refreshLists();
  if (state.currentId !== null) refetchTasks();
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

byTestId('delete-list').addEventListener('click', () => {
  const list = state.lists.get(state.currentId);
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

byTestId('tasks').addEventListener('change', (event) => {
  const box = event.target;
  if (box.dataset.testid !== 'task-done') return;
  const id = Number(box.closest('li').dataset.taskId);
  setDone(id, box.checked).catch((err) => {
    showMessage(describeError(err));
    const task = state.tasks.get(id);
    if (task) box.checked = Boolean(task.done);
  });
});

byTestId('tasks').addEventListener('click', (event) => {
  const button = event.target.closest('[data-testid="task-delete"]');
  if (!button) return;
  const id = Number(button.closest('li').dataset.taskId);
  button.disabled = true;
  deleteTask(id).catch((err) => {
    button.disabled = false;
    showMessage(describeError(err));
  });
});

let searchTimer = null;
function onFilterChange() {
  clearTimeout(searchTimer);
  // Debounced so typing does not resubscribe on every key.
  searchTimer = setTimeout(() => {
    state.filters.search = byTestId('task-search').value.trim();
    state.filters.done = byTestId('task-filter').value;
    if (state.currentId === null) return;
    state.tasks = new Map();
    subscribeTasks();
    renderTasks();
  }, 250);
}
byTestId('task-search').addEventListener('input', onFilterChange);
byTestId('task-filter').addEventListener('change', onFilterChange);

document.querySelector('[data-action="dismiss"]').addEventListener('click', hideMessage);
window.addEventListener('hashchange', route);
// Lists other people create are not broadcast to us (there is no group for
// "every list"), so coming back to the tab picks them up.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refreshLists();
});

renderAccount();
route();
refreshLists();

// For poking at the page from the browser console.
window.todolistApp = { live, state, session };
