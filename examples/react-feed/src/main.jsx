// Connects to the gateway (the one that serves this page, or VITE_HAPTA_URL under `npm run dev`), then renders the
// app inside HaptaProvider. Until a first socket opens, it says so and tries again.
import { Hapta } from "@hapta/client";
import { HaptaProvider } from "@hapta/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.jsx";
import "./style.css";

const url = import.meta.env.VITE_HAPTA_URL
  ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const root = createRoot(document.getElementById("root"));

async function start(attempt = 0) {
  try {
    const hapta = await Hapta.connect(url, { storage: localStorage });
    window.hapta = hapta;   // for the browser test and for trying things in the console
    root.render(<StrictMode><HaptaProvider client={hapta}><App /></HaptaProvider></StrictMode>);
  } catch (error) {
    const wait = Math.min(15, 2 ** attempt);
    root.render(<p className="banner offline">Cannot reach the server ({error.message}); trying again in {wait} s…</p>);
    setTimeout(() => start(attempt + 1), wait * 1000);
  }
}

start();
