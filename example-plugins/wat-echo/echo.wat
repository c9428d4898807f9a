;; wat-echo: a corral plugin written directly in WebAssembly text, to show
;; that the wasm guest ABI needs nothing from Rust. Method `echo` returns
;; its input; any other method is an unknown-method error.
;;
;; The ABI (see README, "WebAssembly guest ABI"):
;;   exports: memory, corral_abi_version, alloc, dealloc, init, call,
;;            health, shutdown
;;   imports: module "corral": log(level, ptr, len), now_ms() -> i64
(module
  (import "corral" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "unknown method")
  (data (i32.const 32) "wat-echo ready")
  ;; a bump allocator over [1024, 60000), wrapping around
  (global $heap (mut i32) (i32.const 1024))

  (func (export "corral_abi_version") (result i32) (i32.const 1))

  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (if (i32.gt_u (i32.add (global.get $heap) (local.get $len)) (i32.const 60000))
      (then (global.set $heap (i32.const 1024))))
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $ptr))

  (func (export "dealloc") (param i32 i32))

  (func (export "init") (result i32)
    (call $log (i32.const 3) (i32.const 32) (i32.const 14))
    (i32.const 0))

  (func (export "health") (result i32) (i32.const 0))
  (func (export "shutdown"))

  ;; call(method, method_len, input, input_len, out) -> code
  ;; the reply is written as [ptr, len] at `out`
  (func (export "call")
    (param $method i32) (param $method_len i32)
    (param $input i32) (param $input_len i32) (param $out i32)
    (result i32)
    (if (i32.and
          (i32.eq (local.get $method_len) (i32.const 4))
          (i32.eq (i32.load (local.get $method)) (i32.const 0x6f686365))) ;; "echo"
      (then
        (i32.store (local.get $out) (local.get $input))
        (i32.store offset=4 (local.get $out) (local.get $input_len))
        (return (i32.const 0))))
    (i32.store (local.get $out) (i32.const 16))
    (i32.store offset=4 (local.get $out) (i32.const 14))
    (i32.const 2)) ;; CORRAL_CALL_ERR_UNKNOWN_METHOD
)
