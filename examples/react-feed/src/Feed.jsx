// The composer and the feed: the 30 newest public posts with their authors, pictures, likes and comments. Nothing
// here keeps a list by hand: each is a live query, and a write shows up as the gateway's diff of it.
import { useHapta, useMutation, useQuery } from "@hapta/react";
import { memo, useEffect, useMemo, useRef, useState } from "react";

const FEED = { filter: "public = true", sort: "-created", limit: 30, expand: ["author"] };

// The size of the thumbnail the feed shows (the demo's posts.media declares "100x100" and "480x0"): a column's
// width, whatever the size of the picture uploaded.
const THUMB = "480x0";

export function Compose({ me }) {
  const { create, status, error } = useMutation();
  const [text, setText] = useState("");
  const [sent, setSent] = useState(null);   // the picture's upload: a fraction while it goes
  const picture = useRef(null);

  async function submit(event) {
    event.preventDefault();
    const file = picture.current.files[0];
    // the post and its picture in one step: stored together, or (a refusal of either) not at all
    const options = file ? { files: { media: [file] }, onProgress: (done, total) => setSent(done / total) } : {};
    const post = await create("posts", { author: me, text, public: true }, options);
    setSent(null);
    if (post) {
      setText("");
      picture.current.value = "";
    }
  }

  return (
    <form className="card" id="compose" onSubmit={submit}>
      <textarea id="text" value={text} onChange={(event) => setText(event.target.value)}
                placeholder="What is happening? (280 characters at most)" required />
      <div className="row">
        <button type="submit" disabled={status === "pending"}>Post</button>
        <input id="picture" type="file" accept="image/png,image/jpeg,image/gif,image/webp" ref={picture} />
        <span className="count">{sent === null ? `${text.length}/280` : `uploading ${Math.round(sent * 100)}%`}</span>
      </div>
      <p className="error" id="compose-error">{error ? error.message : ""}</p>
    </form>
  );
}

export function Feed({ me }) {
  const { items, status, error } = useQuery("posts", FEED);
  // the posts I liked: one live query for the whole feed, not one per post
  const mine = useQuery("likes", { filter: `user = ${JSON.stringify(me)}`, sort: "-created", limit: 500 });
  const liked = useMemo(() => new Map(mine.items.map((like) => [like.post, like.id])), [mine.items]);
  if (status === "loading") return <p className="quiet">Loading the feed…</p>;
  if (status === "error") return <p className="error">{error.message}</p>;
  if (items.length === 0) return <p className="quiet">No posts yet: write the first.</p>;
  return (
    <ul id="feed">
      {items.map((post) => <Post key={post.id} post={post} me={me} like={liked.get(post.id) ?? null} />)}
    </ul>
  );
}

/** One post; drawn again only when the post itself or whether I like it changes (items keep their identity). */
const Post = memo(function Post({ post, me, like }) {
  const [open, setOpen] = useState(false);
  const write = useMutation();
  const author = post.expand?.author?.username ?? "someone";
  const toggleLike = () => (like ? write.delete("likes", like) : write.create("likes", { post: post.id, user: me }));
  return (
    <li className="post" data-id={post.id}>
      <div className="meta">{author} · {new Date(post.created).toLocaleString()}</div>
      <div className="text">{post.text}</div>
      {post.media?.length > 0 && <Picture post={post} file={post.media[0]} />}
      <div className="row actions">
        <button className={like ? "like liked" : "like"} onClick={toggleLike} disabled={write.status === "pending"}
                aria-pressed={!!like}>
          ♥ <span className="likes">{post.likes}</span>
        </button>
        <button className="toggle" onClick={() => setOpen(!open)}>{open ? "Hide comments" : "Comments"}</button>
        {post.author === me && (
          <button className="delete" onClick={() => write.delete("posts", post.id)}>Delete</button>
        )}
      </div>
      {write.error && <p className="error">{write.error.message}</p>}
      {open && <Comments post={post.id} me={me} />}
    </li>
  );
});

/** A post's picture as its thumbnail (a signed link from files.url), never the original. */
function Picture({ post, file }) {
  const hapta = useHapta();
  const [src, setSrc] = useState(null);
  useEffect(() => {
    let current = true;
    hapta.files.url("posts", post.id, "media", file.name, { thumb: THUMB })
      .then((url) => { if (current) setSrc(url); }, () => undefined);   // a file since removed: no picture
    return () => { current = false; };
  }, [hapta, post.id, file.name, file.sha256]);
  return src ? <img className="picture" src={src} alt={file.name} /> : <div className="picture" />;
}

function Comments({ post, me }) {
  const { items, status } = useQuery("comments", { filter: `post = ${JSON.stringify(post)}`, sort: "created",
                                                    limit: 100, expand: ["author"] });
  const { create, status: sending, error } = useMutation();
  const [text, setText] = useState("");

  async function submit(event) {
    event.preventDefault();
    if (await create("comments", { post, author: me, text })) setText("");
  }

  return (
    <div className="comments">
      {status === "loading" ? <p className="quiet">…</p> : (
        <ul>
          {items.map((comment) => (
            <li key={comment.id}><b>{comment.expand?.author?.username ?? "someone"}</b> {comment.text}</li>
          ))}
        </ul>
      )}
      <form onSubmit={submit}>
        <input value={text} onChange={(event) => setText(event.target.value)} placeholder="Comment" required />
        <button disabled={sending === "pending"}>Send</button>
      </form>
      {error && <p className="error">{error.message}</p>}
    </div>
  );
}
