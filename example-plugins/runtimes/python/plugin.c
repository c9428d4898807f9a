/* python: a corral plugin in C that embeds CPython, an interpreter none of
 * corral's authors wrote, to show that a real runtime works under the
 * default seccomp policy with nothing but [permissions] read paths.
 *
 *   eval    INPUT is a Python expression; the reply is str() of its value
 *           ("sum(range(10))" -> "45")
 *   digest  the reply is JSON made by Python's json and hashlib modules:
 *           {"bytes": N, "sha256": "..."} of INPUT
 *
 * The interpreter starts once, in create, isolated from the environment
 * (no PYTHON* variables, no user site folder, no signal handlers), with
 * its standard library from /usr/lib/python3.X (see plugin.toml). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "corral_plugin.h"

typedef struct {
  PyObject *globals;       /* the namespace expressions run in */
  PyThreadState *saved;    /* the GIL is released between calls */
} instance;

static int32_t fail(corral_owned *out, int32_t code, const char *message) {
  size_t len = strlen(message);
  out->ptr = malloc(len ? len : 1);
  out->len = out->ptr ? len : 0;
  if (out->ptr) memcpy(out->ptr, message, len);
  return code;
}

static int32_t reply(corral_owned *out, const char *bytes, size_t len) {
  out->ptr = malloc(len ? len : 1);
  if (!out->ptr) return fail(out, CORRAL_CALL_ERR_PLUGIN, "out of memory");
  memcpy(out->ptr, bytes, len);
  out->len = len;
  return CORRAL_CALL_OK;
}

/* The pending Python exception as the call's error. */
static int32_t python_error(corral_owned *out) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyObject *text = value ? PyObject_Str(value) : NULL;
  const char *message = text ? PyUnicode_AsUTF8(text) : NULL;
  int32_t code = fail(out, CORRAL_CALL_ERR_PLUGIN, message ? message : "python error");
  Py_XDECREF(text);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  PyErr_Clear();
  return code;
}

/* The UTF-8 of str(result), or the error. */
static int32_t reply_str(corral_owned *out, PyObject *result) {
  if (!result) return python_error(out);
  PyObject *text = PyObject_Str(result);
  Py_DECREF(result);
  if (!text) return python_error(out);
  Py_ssize_t len = 0;
  const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
  int32_t code = utf8 ? reply(out, utf8, (size_t)len) : python_error(out);
  Py_DECREF(text);
  return code;
}

static const char DIGEST[] =
    "import hashlib, json\n"
    "def digest(data):\n"
    "    return json.dumps({'bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest()},\n"
    "                      sort_keys=True)\n";

static void *create(const corral_host *host) {
  (void)host;
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.install_signal_handlers = 0;
  config.write_bytecode = 0;
  config.site_import = 0;
  /* The worker is /proc/self/fd/N: tell CPython where its library is. */
  PyStatus status = PyConfig_SetString(&config, &config.home, L"/usr");
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) return NULL;

  instance *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  self->globals = PyDict_New();
  if (!self->globals || PyDict_SetItemString(self->globals, "__builtins__", PyEval_GetBuiltins()) < 0)
    return NULL;
  PyObject *defined = PyRun_String(DIGEST, Py_file_input, self->globals, self->globals);
  if (!defined) {
    PyErr_Print();
    return NULL;
  }
  Py_DECREF(defined);
  self->saved = PyEval_SaveThread();
  return self;
}

static int32_t call(void *opaque, corral_bytes method, corral_bytes input, corral_owned *out) {
  instance *self = opaque;
  PyGILState_STATE gil = PyGILState_Ensure();
  int32_t code;
  if (method.len == 4 && memcmp(method.ptr, "eval", 4) == 0) {
    PyObject *source = PyUnicode_DecodeUTF8((const char *)input.ptr, (Py_ssize_t)input.len, "strict");
    PyObject *result = NULL;
    if (source) {
      const char *text = PyUnicode_AsUTF8(source);
      result = text ? PyRun_String(text, Py_eval_input, self->globals, self->globals) : NULL;
      Py_DECREF(source);
    }
    code = reply_str(out, result);
  } else if (method.len == 6 && memcmp(method.ptr, "digest", 6) == 0) {
    PyObject *digest = PyDict_GetItemString(self->globals, "digest");  /* borrowed */
    PyObject *data = PyBytes_FromStringAndSize((const char *)input.ptr, (Py_ssize_t)input.len);
    PyObject *result = digest && data ? PyObject_CallOneArg(digest, data) : NULL;
    Py_XDECREF(data);
    code = reply_str(out, result);
  } else {
    code = fail(out, CORRAL_CALL_ERR_UNKNOWN_METHOD, "unknown method: try eval or digest");
  }
  PyGILState_Release(gil);
  return code;
}

static int32_t health(void *opaque) {
  (void)opaque;
  return 0;
}

static void destroy(void *opaque) {
  instance *self = opaque;
  if (!self) return;
  PyEval_RestoreThread(self->saved);
  Py_XDECREF(self->globals);
  Py_FinalizeEx();
  free(self);
}

static void free_owned(corral_owned out) { free(out.ptr); }

static const corral_plugin_v1 TABLE = {
    .abi_version = CORRAL_ABI_VERSION,
    .create = create,
    .call = call,
    .health = health,
    .destroy = destroy,
    .free_owned = free_owned,
};

const corral_plugin_v1 *corral_plugin_v1_entry(void) { return &TABLE; }
