// The web feed: sign up, a live feed of public posts with comments, a typing indicator on a channel, pictures
// uploaded with progress. Plain JavaScript, no build step: `bin/hapta serve --static examples/web-feed` and open
// the URL it prints. Everything goes through @hapta/client (./hapta.js is the committed build).
import { Hapta, HaptaError } from "./hapta.js";

const $ = (id) => document.getElementById(id);
const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const hapta = await Hapta.connect(url, { storage: localStorage });

const FEED = { filter: "public = true", sort: "-created", limit: 50 };
let feed = null;                // the live query: its items are the 50 newest public posts, kept current
let posts = [];                 // what the feed shows: its items as last heard
let room = null;

hapta.on("state", (state) => {
  $("state").textContent = state;
  $("state").className = `state ${state}`;
});
$("state").textContent = hapta.state;
$("state").className = `state ${hapta.state}`;
let started = false;
hapta.on("auth", (session) => {   // a sign-in starts the feed; a refreshed session changes nothing; a sign-out ends it
  if (session && !started) start();
  else if (!session && started) stop();
});

function message(error) {
  return error instanceof HaptaError ? `${error.message}${error.retryAfter ? ` (try again in ${Math.ceil(error.retryAfter)} s)` : ""}` : String(error);
}

// ---- account ----

$("account").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("account-error").textContent = "";
  try {
    await hapta.auth.register({ email: $("email").value, password: $("password").value });
  } catch (error) {
    $("account-error").textContent = message(error);
  }
});

$("signin").addEventListener("click", async () => {
  $("account-error").textContent = "";
  try {
    await hapta.auth.login($("email").value, $("password").value);
  } catch (error) {
    $("account-error").textContent = message(error);
  }
});

$("logout").addEventListener("click", () => hapta.auth.logout().catch(() => undefined));

// ---- the feed ----

async function start() {
  started = true;
  $("account").hidden = true;
  $("feed-area").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = hapta.session.user.email;
  await watchFeed();
  room = hapta.channel("room:feed");
  await room.join();
  room.on("message", ({ from, data }) => {
    if (data && data.typing) showTyping(from.user);
  });
}

function stop() {
  started = false;
  feed?.stop();
  feed = null;
  room = null;
  posts = [];
  for (const postId of [...openComments.keys()]) closeComments(postId);
  render();
  $("account").hidden = false;
  $("feed-area").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
}

// The gateway keeps the list: the first 50 posts records.list would answer, in order, across reconnects (the client
// asks again with what it holds and is sent only what changed). The callback hears them at the start and after
// every change.
async function watchFeed() {
  feed?.stop();
  feed = await hapta.records("posts").query(FEED, (items) => {
    posts = items;
    render();
  });
}

const pictures = new Map();     // "post id/name" -> a signed URL

async function pictureUrl(post, file) {
  const key = `${post.id}/${file.name}/${file.sha256}`;
  if (!pictures.has(key)) pictures.set(key, hapta.files.url("posts", post.id, "media", file.name));
  return pictures.get(key);
}

function render() {
  const list = $("feed");
  list.replaceChildren(...posts.map((post) => {
    const item = document.createElement("li");
    item.className = "post";
    item.dataset.id = post.id;
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = post.text;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${new Date(post.created).toLocaleString()} · ${post.author === hapta.session?.user.id ? "you" : post.author}`;
    item.append(text, meta);
    for (const file of post.media ?? []) {
      const image = document.createElement("img");
      image.alt = file.name;
      pictureUrl(post, file).then((src) => { image.src = src; }, () => undefined);
      item.append(image);
    }
    item.append(comments(post));
    return item;
  }));
}

// ---- comments ----

const openComments = new Map();  // post id -> its comments' live query ({items, stop})

function comments(post) {
  const box = document.createElement("div");
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.textContent = openComments.has(post.id) ? "hide comments" : "comments";
  toggle.addEventListener("click", () => (openComments.has(post.id) ? closeComments(post.id) : showComments(post.id)));
  box.append(toggle);
  const open = openComments.get(post.id);
  if (open) {
    const list = document.createElement("ul");
    list.className = "comments";
    for (const comment of open.items) {
      const line = document.createElement("li");
      line.textContent = comment.text;
      list.append(line);
    }
    const form = document.createElement("form");
    const input = document.createElement("input");
    input.placeholder = "a comment";
    input.required = true;
    const send = document.createElement("button");
    send.textContent = "send";
    form.append(input, send);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await hapta.records("comments").create({ post: post.id, author: hapta.session.user.id, text: input.value });
      input.value = "";
    });
    list.append(form);
    box.append(list);
  }
  return box;
}

async function showComments(postId) {
  const open = { items: [], stop: null };
  openComments.set(postId, open);
  const query = await hapta.records("comments").query(
    { filter: `post = "${postId}"`, sort: "created", limit: 100 },
    (items) => { open.items = items; render(); });
  open.stop = query.stop;
  if (openComments.get(postId) !== open) query.stop();   // closed while it started
}

function closeComments(postId) {
  openComments.get(postId)?.stop?.();
  openComments.delete(postId);
  render();
}

// ---- writing, with a picture and a typing indicator ----

let lastTyping = 0;
$("text").addEventListener("input", () => {
  if (room && Date.now() - lastTyping > 1000) {   // at most one notice a second
    lastTyping = Date.now();
    room.send({ typing: true }).catch(() => undefined);
  }
});

let typingTimer = null;
function showTyping(user) {
  $("typing").textContent = `${user === hapta.session?.user.id ? "you" : "someone"} is typing…`;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 3000);
}

$("compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("compose-error").textContent = "";
  const picture = $("picture").files[0];
  try {
    const post = await hapta.records("posts").create({ author: hapta.session.user.id, text: $("text").value,
                                                       public: true });
    if (picture) {
      const progress = $("progress");
      progress.hidden = false;
      await hapta.files.upload("posts", post.id, "media", picture, {
        onProgress: (sent, size) => { progress.value = size ? sent / size : 1; },
      });
      progress.hidden = true;
    }
    $("text").value = "";
    $("picture").value = "";
  } catch (error) {
    $("compose-error").textContent = message(error);
  }
});

if (hapta.session) await start();
window.feedReady = true;   // for the browser test
