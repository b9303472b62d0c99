"""Embedding fnhost from Python through ctypes (no compiled extension).

    python3 host/embed/examples/embed.py target/debug
loads target/debug/libfnhost_embed.so, loads echo.Handler from the same
directory, invokes it, hot-swaps a registry function, and offers a host
function written in Python that a plugin calls (echo.CallHost). Prints what
it saw; exits non-zero if anything misbehaved.
"""
import ctypes
import json
import sys
from pathlib import Path


def load(lib_dir: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(lib_dir / "libfnhost_embed.so"))
    lib.fnhost_version.restype = ctypes.c_char_p
    lib.fnhost_runtime_new.restype = ctypes.c_void_p
    lib.fnhost_runtime_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.fnhost_runtime_free.argtypes = [ctypes.c_void_p]
    lib.fnhost_function_load.restype = ctypes.c_void_p
    lib.fnhost_function_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.fnhost_function_free.argtypes = [ctypes.c_void_p]
    lib.fnhost_function_invoke.restype = ctypes.c_void_p
    lib.fnhost_function_invoke.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.fnhost_deploy.restype = ctypes.c_int
    lib.fnhost_deploy.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.fnhost_invoke.restype = ctypes.c_void_p
    lib.fnhost_invoke.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.fnhost_result_is_error.argtypes = [ctypes.c_void_p]
    lib.fnhost_result_body.restype = ctypes.POINTER(ctypes.c_ubyte)
    lib.fnhost_result_body.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    for name in ("error_type", "request_id", "summary_json", "log", "content_type"):
        f = getattr(lib, f"fnhost_result_{name}")
        f.restype = ctypes.c_char_p
        f.argtypes = [ctypes.c_void_p]
    lib.fnhost_result_free.argtypes = [ctypes.c_void_p]
    lib.fnhost_string_free.argtypes = [ctypes.c_void_p]
    lib.fnhost_host_function_register.restype = ctypes.c_int
    lib.fnhost_host_function_register.argtypes = [ctypes.c_void_p, ctypes.c_char_p, HOST_FN, ctypes.c_void_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]
    lib.fnhost_host_call_function.restype = ctypes.c_char_p
    lib.fnhost_host_call_function.argtypes = [ctypes.c_void_p]
    lib.fnhost_host_call_set_output.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.fnhost_host_call_set_error.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    return lib


# int (*fnhost_host_fn)(void *user, fnhost_host_call *call, const uint8_t *input, size_t len)
HOST_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte),
                           ctypes.c_size_t)


class Fnhost:
    """A thin, owning wrapper: every object is freed exactly once."""

    def __init__(self, lib_dir: Path, config=None):
        self.lib = load(lib_dir)
        error = ctypes.c_void_p()
        self.rt = self.lib.fnhost_runtime_new(json.dumps(config).encode() if config else None,
                                              ctypes.byref(error))
        if not self.rt:
            raise RuntimeError(self._take(error))

    def _take(self, error: ctypes.c_void_p) -> str:
        message = ctypes.cast(error, ctypes.c_char_p).value.decode()
        self.lib.fnhost_string_free(error)
        return message

    def _result(self, r):
        try:
            n = ctypes.c_size_t()
            body = self.lib.fnhost_result_body(r, ctypes.byref(n))
            out = {
                "error": bool(self.lib.fnhost_result_is_error(r)),
                "body": ctypes.string_at(body, n.value) if n.value else b"",
                "error_type": (self.lib.fnhost_result_error_type(r) or b"").decode() or None,
                "request_id": self.lib.fnhost_result_request_id(r).decode(),
                "summary": json.loads(self.lib.fnhost_result_summary_json(r)),
            }
        finally:
            self.lib.fnhost_result_free(r)
        return out

    def load(self, **config):
        error = ctypes.c_void_p()
        f = self.lib.fnhost_function_load(self.rt, json.dumps(config).encode(), ctypes.byref(error))
        if not f:
            raise RuntimeError(self._take(error))
        return f

    def invoke_function(self, f, payload: bytes):
        return self._result(self.lib.fnhost_function_invoke(f, payload, len(payload)))

    def deploy(self, **config):
        error = ctypes.c_void_p()
        if self.lib.fnhost_deploy(self.rt, json.dumps(config).encode(), ctypes.byref(error)) != 0:
            raise RuntimeError(self._take(error))

    def invoke(self, target: str, payload: bytes):
        return self._result(self.lib.fnhost_invoke(self.rt, target.encode(), payload, len(payload)))

    def host_function(self, name: str, func):
        """Offers func(caller_name, input_bytes) -> bytes to plugins as `name`; an
        exception becomes the plugin's typed error."""
        lib = self.lib

        def trampoline(_user, call, data, n):
            try:
                caller = lib.fnhost_host_call_function(call).decode()
                out = func(caller, ctypes.string_at(data, n) if n else b"")
                lib.fnhost_host_call_set_output(call, out, len(out))
                return 0
            except Exception as e:  # never let an exception cross into C
                lib.fnhost_host_call_set_error(call, type(e).__name__.encode(), str(e).encode())
                return 1

        callback = HOST_FN(trampoline)
        # Kept alive as long as the runtime: fnhost calls it until then.
        self._callbacks = getattr(self, "_callbacks", []) + [callback]
        error = ctypes.c_void_p()
        if lib.fnhost_host_function_register(self.rt, name.encode(), callback, None, ctypes.byref(error)) != 0:
            raise RuntimeError(self._take(error))

    def close(self, *functions):
        for f in functions:
            self.lib.fnhost_function_free(f)
        self.lib.fnhost_runtime_free(self.rt)


def main(lib_dir: Path) -> int:
    fn = Fnhost(lib_dir)
    print("fnhost", fn.lib.fnhost_version().decode())
    echo = fn.load(entry="echo.Handler", code_dir=str(lib_dir))
    r = fn.invoke_function(echo, b"\x00binary\xff")
    print("echo:", r)
    ok = r["body"] == b"\x00binary\xff" and not r["error"] and len(r["request_id"]) == 36
    fn.deploy(name="orders", entry="testplugin.Handler", code_dir=str(lib_dir), user_data={"NAME": "py"})
    r = fn.invoke("orders", b'{"key": "NAME"}')
    print("orders:", r["body"][:80])
    ok = ok and not r["error"] and json.loads(r["body"])["user_data"] == "py"
    cache = {"k1": b"from a Python dict"}

    def cache_get(caller: str, key: bytes) -> bytes:
        if caller != "reader":
            raise PermissionError(f"{caller} may not read the cache")
        return cache[key.decode()]

    fn.host_function("cache.get", cache_get)
    fn.deploy(name="reader", entry="echo.CallHost", code_dir=str(lib_dir), user_data={"HOST_FUNCTION": "cache.get"})
    fn.deploy(name="other", entry="echo.CallHost", code_dir=str(lib_dir), user_data={"HOST_FUNCTION": "cache.get"})
    r = fn.invoke("reader", b"k1")
    print("host function:", r["body"])
    ok = ok and r["body"] == b"from a Python dict"
    r = fn.invoke("other", b"k1")
    print("host function refused:", r["error_type"])
    ok = ok and r["error"] and r["error_type"] == "PermissionError"
    r = fn.invoke("reader", b"missing")
    ok = ok and r["error_type"] == "KeyError"
    try:
        fn.load(entry="nothing.Handler", code_dir=str(lib_dir))
        ok = False
    except RuntimeError as e:
        print("refused:", e)
        ok = ok and "no library for `nothing`" in str(e)
    fn.close(echo)
    print("embed.py:", "all checks passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "target/debug").resolve()))
