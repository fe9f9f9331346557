// A stand-in ESP32 panel for tests: MicroPython's WebAssembly port behind a byte stream.
//
//   socat PTY,link=DIR/ttyPANEL,rawer EXEC:"node bridge.mjs --state DIR --pkg PKGDIR"
//
// stdin/stdout are the "UART" (socat connects them to a pseudo-terminal, so mpremote and
// pyserial see a device path). The VM is real MicroPython (its own REPL, raw REPL, compiler,
// .mpy loader); only what a browser VM lacks is supplied here:
//   - a flash filesystem: DIR/flash on the host, loaded into the VM at every boot and written
//     back after every command, so tests can seed and inspect the panel's files;
//   - OSError numbers: the VM reports Emscripten's errno values (ENOENT=44); prelude.py remaps
//     them to MicroPython's (ENOENT=2) so mpremote's error handling works as on a device;
//   - soft reset (Ctrl-D in the raw REPL) and hard reset (machine.reset()): a fresh VM;
//   - the ESP32's watchdog (ports/esp32/machine_wdt.c): kept here, outside the VM, so that it
//     survives soft resets as on the board; it expires while the REPL waits for input too, and
//     then hard-resets the VM (the command it interrupted leaves no file behind). The panel's
//     application (boot_standin.py) starts it and feeds it until a Ctrl-C stops the app;
//   - hardware: fakes/machine.py and fakes/network.py over tests/mpy's fakes (buttons follow
//     DIR/buttons.json).
// Events for the test go to DIR/events.jsonl, one JSON object a line.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const STATE = path.resolve(args.state);
const FLASH = path.join(STATE, "flash");
const HEAP = parseInt(args.heap || "262144", 10);  // about what an ESP32 without PSRAM leaves free
const { loadMicroPython } = await import(pathToFileURL(path.join(args.pkg, "micropython.mjs")).href);

const VM_FLASH = "/flash";   // the VM's MEMFS folder mounted as MicroPython's "/"
const VM_FAKES = "/standin"; // fakes, imported once at boot, then unmounted
// fakes/ adapts the unix port's fakes (tests/mpy) to the stand-in's board; the VM gets all four
const FAKES = [path.join(HERE, "..", "mpy", "fake_machine.py"), path.join(HERE, "..", "mpy", "fake_network.py"),
  ...fs.readdirSync(path.join(HERE, "fakes")).map((name) => path.join(HERE, "fakes", name))];
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms) => Atomics.wait(sleeper, 0, 0, Math.max(0, ms));

let out = [];          // bytes waiting for stdout
let tail = "";         // last output characters, to notice "SELFTEST PRESS"
let pressAt = null;    // when the self-test asked for presses (ms)
let buttons = [];      // [[pin, down_ms, up_ms], ...] relative to pressAt
let hardReset = null;  // "hard" (machine.reset()) or "watchdog": the VM restarts after the command
let silent = false;    // swallow VM output (banner of a VM started for a soft reset in raw mode)
let rawMode = false;   // the REPL mode the host last asked for (Ctrl-A raw, Ctrl-B friendly)
let mp = null;
let paste = [];      // a raw-paste request being received
let cause = 1;       // machine.reset_cause() of the running VM: 1 power-on, 2 hard, 3 watchdog, 5 soft
// The watchdog: {timeout, fedAt} while running. One for the board: WDT(timeout) again only
// changes the timeout; only a hard reset stops it. The count runs from the last feed.
let wdt = null;
let appFeeds = false; // the panel's application is running (it feeds the watchdog) until a Ctrl-C
let discard = false;  // the watchdog fired mid-command: what that command wrote never reached flash

function event(obj) {
  fs.appendFileSync(path.join(STATE, "events.jsonl"), JSON.stringify({ ...obj, at: Date.now() }) + "\n");
}

function flush() {
  if (!out.length) return;
  let buf = Buffer.from(out);
  out = [];
  while (buf.length) {
    try {
      buf = buf.subarray(fs.writeSync(1, buf));
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
      sleep(2);
    }
  }
}

function emit(c) {
  if (silent) return;
  if (c === 10 && !tail.endsWith("\r")) out.push(13);  // a UART console is "cooked": \n -> \r\n
  out.push(c);
  tail = (tail + String.fromCharCode(c)).slice(-40);
  if (tail.endsWith("SELFTEST PRESS")) {
    pressAt = Date.now();
    try { buttons = JSON.parse(fs.readFileSync(path.join(STATE, "buttons.json"), "utf8")); } catch { buttons = []; }
  }
  if (out.length >= 4096) flush();
}

function say(text) {
  for (const c of Buffer.from(text, "utf8")) emit(c);
}

// ---- flash <-> host folder -------------------------------------------------------------
function loadFlash(FS) {
  const walk = (host, vm) => {
    for (const name of fs.readdirSync(host)) {
      const h = path.join(host, name), v = vm + "/" + name;
      if (fs.statSync(h).isDirectory()) { FS.mkdir(v); walk(h, v); }
      else FS.writeFile(v, fs.readFileSync(h));
    }
  };
  FS.mkdir(VM_FLASH);
  walk(FLASH, VM_FLASH);
}

function saveFlash(FS) {
  const walk = (vm, host) => {
    const seen = new Set();
    for (const name of FS.readdir(vm)) {
      if (name === "." || name === "..") continue;
      seen.add(name);
      const v = vm + "/" + name, h = path.join(host, name);
      if (FS.isDir(FS.stat(v).mode)) {
        if (fs.existsSync(h) && !fs.statSync(h).isDirectory()) fs.rmSync(h);
        fs.mkdirSync(h, { recursive: true });
        walk(v, h);
      } else {
        const data = Buffer.from(FS.readFile(v));
        if (fs.existsSync(h) && fs.statSync(h).isDirectory()) fs.rmSync(h, { recursive: true });
        if (!fs.existsSync(h) || !fs.readFileSync(h).equals(data)) fs.writeFileSync(h, data);
      }
    }
    for (const name of fs.readdirSync(host)) if (!seen.has(name)) fs.rmSync(path.join(host, name), { recursive: true });
  };
  walk(VM_FLASH, FLASH);
}

// ---- the watchdog ------------------------------------------------------------------------
function wdtFired() {
  if (!wdt) return false;
  if (appFeeds) wdt.fedAt = Date.now();
  if (Date.now() - wdt.fedAt <= wdt.timeout) return false;
  event({ event: "watchdog", timeout: wdt.timeout });
  wdt = null;  // the reset it causes stops it
  hardReset = "watchdog";
  discard = true;
  return true;
}

// ---- the VM ----------------------------------------------------------------------------
// Hooks return 1 when the watchdog fired: the VM's side then raises SystemExit to unwind.
const hooks = {
  sleep: (ms) => {
    flush();
    const end = Date.now() + ms;
    for (;;) {
      if (wdtFired()) return 1;
      const left = end - Date.now();
      if (left <= 0) return 0;
      sleep(Math.min(left, 20));
    }
  },
  reset: () => { hardReset = "hard"; return 0; },
  cause: () => cause,
  wdt: (timeout) => {
    if (wdtFired()) return 1;
    if (!wdt) wdt = { timeout, fedAt: Date.now() };
    else wdt.timeout = timeout;
    event({ event: "wdt", timeout });
    return 0;
  },
  feed: () => {
    if (wdtFired()) return 1;
    if (wdt) wdt.fedAt = Date.now();
    return 0;
  },
  appWatchdogMs: () => {  // a test may shorten the application's watchdog (DIR/app_wdt_ms)
    try { return parseInt(fs.readFileSync(path.join(STATE, "app_wdt_ms"), "utf8"), 10) || 0; } catch { return 0; }
  },
  booted: (json) => { event({ event: "firmware", info: JSON.parse(json) }); return 0; },
  level: (pin) => {
    if (pressAt === null) return 1;
    const t = Date.now() - pressAt;
    for (const [p, down, up] of buttons) if (p === pin && t >= down && t < up) return 0;
    return 1;  // buttons pull up: released reads 1
  },
};

const CAUSE = { "power-on": 1, hard: 2, watchdog: 3, soft: 5 };

async function boot(kind) {
  if (mp && !discard) saveFlash(mp.FS);
  discard = false;
  cause = CAUSE[kind];
  mp = await loadMicroPython({ heapsize: HEAP, stdout: (d) => emit(d[0]), linebuffer: false });
  mp.FS.mkdir(VM_FAKES);
  for (const file of FAKES) mp.FS.writeFile(VM_FAKES + "/" + path.basename(file), fs.readFileSync(file));
  loadFlash(mp.FS);
  mp.registerJsModule("_standin", hooks);
  mp.runPython(fs.readFileSync(path.join(HERE, "prelude.py"), "utf8"));
  hardReset = null;
  pressAt = null;
  event({ event: "boot", kind });
}

async function hardBoot(kind) {
  if (kind === "watchdog") {  // ESP-IDF's panic text, then the reboot
    say("\r\nE (" + Date.now() % 1000000 + ") task_wdt: Task watchdog got triggered. The following tasks/users did not reset the watchdog in time:\r\n");
    say("E (" + Date.now() % 1000000 + ") task_wdt:  - mpy_machine_wdt\r\nRebooting...\r\n");
  }
  flush();
  wdt = null;  // any hard reset stops the watchdog
  appFeeds = false;
  await boot(kind);
  say("\r\nstandin: " + kind + " reset; MicroPython " + "starts (WebAssembly stand-in, no radio)\r\n");
  try {
    mp.runPython(fs.readFileSync(path.join(HERE, "boot_standin.py"), "utf8"));
  } catch (e) {
    say("standin boot: " + String(e.message || e).split("\n").join("\r\n") + "\r\n");
  }
  const extra = path.join(STATE, "boot_console.txt");
  if (fs.existsSync(extra)) say(fs.readFileSync(extra, "utf8").replace(/\r?\n/g, "\r\n"));
  appFeeds = wdt !== null;  // the application started the watchdog and feeds it while it runs
  mp.replInit();   // prints the banner and the friendly prompt
  rawMode = false;
  saveFlash(mp.FS);
  flush();
  event({ event: "ready", kind });  // the app has started: the prompt is there
}

async function softBoot() {
  say("MPY: soft reboot\r\n");
  flush();
  await boot("soft");
  if (rawMode) {
    silent = true;
    mp.replInit();
    silent = false;
    mp.replProcessChar(1);  // back into the raw REPL: "raw REPL; CTRL-B to exit\r\n>"
  } else {
    mp.replInit();
  }
  flush();
}

await hardBoot("power-on");

// Input arrives as events, so that the watchdog can expire while the REPL waits for a byte.
const pending = [];
let wake = null;
let eof = false;
const wakeUp = () => { if (wake) { const w = wake; wake = null; w(); } };
process.stdin.on("data", (b) => { pending.push(b); wakeUp(); });
process.stdin.on("end", () => { eof = true; wakeUp(); });
process.stdin.on("error", () => { eof = true; wakeUp(); });
const input = (ms) => new Promise((resolve) => {
  if (pending.length || eof) { resolve(); return; }
  wake = resolve;
  setTimeout(wakeUp, ms);
});

for (;;) {
  await input(20);
  if (wdtFired()) { await hardBoot("watchdog"); continue; }
  if (!pending.length) {
    if (eof) break;
    continue;
  }
  const buf = Buffer.concat(pending.splice(0));
  const n = buf.length;
  let wrote = false;
  for (let i = 0; i < n; i++) {
    const c = buf[i];
    // Raw-paste request (Ctrl-E 'A' Ctrl-A): this VM would wait for the pasted bytes inside
    // the C code, where no input ever arrives. Answer "R\x00" (understood, unsupported), as a
    // device without raw-paste does; mpremote then sends the command in plain raw REPL.
    if (rawMode && (paste.length || c === 5)) {
      paste.push(c);
      if (paste.length === 3 || (paste.length === 2 && c !== 0x41) || (paste.length === 3 && c !== 1)) {
        const seq = paste;
        paste = [];
        if (seq.length === 3 && seq[2] === 1) { say("R\x00"); continue; }
        for (const x of seq) mp.replProcessChar(x);
      }
      continue;
    }
    if (c === 1) rawMode = true;
    if (c === 2) rawMode = false;
    if (c === 3) appFeeds = false;  // Ctrl-C stops the application: nobody feeds the watchdog now
    if (c === 4) wrote = true;
    const ret = mp.replProcessChar(c);
    if (!hardReset && wdtFired()) wrote = false;  // it expired during a command that did not sleep
    if (hardReset) { await hardBoot(hardReset); wrote = false; break; }  // the rest of the input went to the old VM
    if (ret) { await softBoot(); }
  }
  flush();
  if (wrote) saveFlash(mp.FS);
}
saveFlash(mp.FS);
flush();
process.exit(0);
