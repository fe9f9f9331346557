// Run a MicroPython script on the 32-bit WebAssembly port (the npm package that
// tests/device_standin/standin.py ensure_vm() installs), with host folders copied into the VM's
// filesystem:
//
//   node tests/mpy_cases/wasm_run.mjs PKG_DIR HEAP_BYTES SCRIPT [HOST_DIR=VM_DIR[=back] ...]
//
// A mount ending in "=back" is copied back to HOST_DIR after the run, replacing it (a panel's
// flash that the next run boots from).
// Each VM_DIR is put at the front of sys.path (in the order given) unless it is "/lib" (already
// on the VM's path, as on an ESP32) or its HOST_DIR is empty (an empty folder: "=/data").
// The pyscript variant cannot collect garbage while Python runs: gc.collect() only marks a
// collection as pending and it runs when control is back in JavaScript (no C stack to scan),
// so within one run gc.mem_alloc() counts every byte ever allocated. Hence: if SCRIPT leaves a
// generator named `steps` in its globals, it is resumed once per call from here until it ends;
// a `yield` after gc.collect() gives a collected heap at the next step.
// Prints the VM's output; exits 1 on an uncaught Python exception.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pkg, heap, script, ...mounts] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(path.join(pkg, "micropython.mjs")).href);
const out = (line) => process.stdout.write(line + "\n");
const mp = await loadMicroPython({ heapsize: parseInt(heap, 10), stdout: out, stderr: out });

function mkdirs(vm) {
  let at = "";
  for (const part of vm.split("/").filter(Boolean)) {
    at += "/" + part;
    try { mp.FS.mkdir(at); } catch { /* exists */ }
  }
}

function copy(host, vm) {
  mkdirs(vm);
  for (const name of fs.readdirSync(host)) {
    const h = path.join(host, name);
    const v = vm + "/" + name;
    if (fs.statSync(h).isDirectory()) copy(h, v);
    else mp.FS.writeFile(v, fs.readFileSync(h));
  }
}

const front = [];
const back = [];
for (const mount of mounts) {
  const [host, vm, again] = mount.split("=");
  if (again === "back") back.push([host, vm]);
  if (!host) { mkdirs(vm); continue; }
  copy(host, vm);
  if (vm !== "/lib") front.push(vm);
}

try {
  mp.runPython("import sys\nsys.path[:0] = " + JSON.stringify(front) + "\n");
  mp.runPython(fs.readFileSync(script, "utf8"));
  mp.runPython("_alive = type(globals().get('steps')).__name__ == 'generator'");
  while (mp.globals.get("_alive")) {
    mp.runPython("_alive = next(steps, StopIteration) is not StopIteration");
  }
} catch (err) {
  out(String(err.message || err));
  process.exit(1);
}

function save(vm, host) {
  // a mirror: what the VM removed or renamed away is gone from the host copy too
  fs.rmSync(host, { recursive: true, force: true });
  fs.mkdirSync(host, { recursive: true });
  for (const name of mp.FS.readdir(vm)) {
    if (name === "." || name === "..") continue;
    const v = vm + "/" + name;
    if (mp.FS.isDir(mp.FS.stat(v).mode)) save(v, path.join(host, name));
    else fs.writeFileSync(path.join(host, name), Buffer.from(mp.FS.readFile(v)));
  }
}
for (const [host, vm] of back) save(vm, host);
