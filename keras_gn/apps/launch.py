"""How every keras_gn binary starts and fails.

`run(main, name=..., doc=...)` is absl's `app.run` with:

- errors as one line on stderr, no traceback: a flag absl cannot parse, a
  value the checks refuse (`app.UsageError`, a `ValueError` raised by
  `usage_errors`) and a leftover argument exit with code 2; a `RunError`
  (a folder in use, an unreadable checkpoint) with code 1;
- TensorFlow's Python INFO logs ("Reduce to ...", "Using MirroredStrategy
  ...") off unless `--verbose`, and every log line written once, in absl's
  format (TensorFlow's logger and Orbit's controller wrote theirs twice);
  the C++ logs are turned down before TensorFlow loads (keras_gn._startup);
- `--help` showing the binary's own documentation.
"""

import contextlib
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from keras_gn import _startup
from keras_gn.errors import RunError

__all__ = ["run", "usage_errors"]

FLAGS = flags.FLAGS
flags.DEFINE_bool("verbose", False, "Show TensorFlow's own logs (C++ start-up lines, Python INFO), hidden by default.")


@contextlib.contextmanager
def usage_errors(flag=None, errors=(ValueError,)):
    """Turns an error of the types `errors` raised in the block into a usage
    error (exit 2), with `flag` named first when given."""
    try:
        yield
    except errors as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise app.UsageError(f"{flag}: {message}" if flag else str(message)) from None


def _fail(name, code, message):
    message = " ".join(str(message).split()) or "failed"
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _not_printed_by_orbit(record):
    # Orbit's controller logs each of its lines and prints it as well.
    return not record.pathname.endswith(os.path.join("orbit", "controller.py"))


def _quiet_python_logs(verbose):
    # TensorFlow's logger got a handler of its own when it was imported;
    # absl's handler on the root logger prints the same records again.
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    absl_logging.get_absl_handler().addFilter(_not_printed_by_orbit)
    if not verbose:
        tf_logger.setLevel(logging.WARNING)


def _own_flags_in_help():
    """absl's --help lists the main module's key flags only; the binaries
    define theirs in keras_gn modules (keras_gn.train.cli, the app), which
    --help then left out. Each is made a key flag of the main module (the
    console script, or `python -m`'s module), so --help lists them with their
    defaults and help; --helpfull still lists absl's and TensorFlow's."""
    main_module = sys.argv[0]
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if module.startswith(("keras_gn", "experiments")) and module != main_module:
            for flag in module_flags:
                FLAGS.register_key_flag_for_module(main_module, flag)


def run(main, *, name, doc):
    """Runs `main(argv)` as the binary `name`, `doc` its --help text."""
    sys.modules["__main__"].__doc__ = doc  # what absl's --help prints
    _own_flags_in_help()

    def parse(argv):
        try:
            argv = FLAGS(argv)
        except flags.Error as error:
            _fail(name, 2, error)
        if len(argv) > 1:
            _fail(name, 2, f"unexpected argument(s) {' '.join(argv[1:])}; every setting is a --flag (see --help).")
        return argv

    def checked_main(argv):
        _startup.absl_min_log_level()
        _quiet_python_logs(FLAGS.verbose)
        try:
            main(argv)  # what it returns is not an exit status (absl's app.run would sys.exit it)
        except app.UsageError as error:
            _fail(name, 2, error)
        except RunError as error:
            _fail(name, 1, error)

    app.run(checked_main, flags_parser=parse)
