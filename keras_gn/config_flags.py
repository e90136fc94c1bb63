"""Command-line flags made from the configuration dataclasses: the field
helpers every config uses. A leaf module: it imports only absl and
dataclasses, so a config (`StudyConfig`) imports no training stack.

Every field of a config (`TrainConfig`, `VideoConfig`, `StudyConfig`) is one
absl flag of the field's name, type and default, with the help text kept next
to the field (`option`), so a field is written once and every binary reads it
the same way:

    define_flags(TrainConfig)                  # at import, in the binary
    config = TrainConfig(**values(TrainConfig))  # in main()

Tuples are comma-separated lists; `None` defaults take the annotation's type;
fields declared with `option(..., flag=False)` are not flags. A value outside
`choices` or below `minimum` stops the binary with one line naming the flag,
the value and what is allowed (absl's `app.UsageError`), before anything is
built. `keras_gn.train.cli` adds the runtime flags (the strategy).
"""

import dataclasses

from absl import app, flags

__all__ = ["option", "inherit", "define_flags", "values"]


def option(default, help, *, choices=None, item=None, minimum=None, flag=True):
    """A dataclass field with its command-line help. `choices`: allowed
    values (of a string, or of each item of a tuple); `item`: the type of a
    tuple's items (default: that of the default's first); `minimum`: least
    value of a number or of each item; `flag=False`: not on the command line."""
    metadata = {"help": help, "choices": choices, "item": item, "minimum": minimum, "flag": flag}
    return dataclasses.field(default=default, metadata=metadata)


def inherit(config_cls, name, default=dataclasses.MISSING, **changes):
    """A subclass's field like `config_cls`'s field `name` (its help and
    checks) with another `default` and/or metadata `changes` (e.g.
    `flag=False`)."""
    field = next(f for f in dataclasses.fields(config_cls) if f.name == name)
    default = field.default if default is dataclasses.MISSING else default
    return dataclasses.field(default=default, metadata={**field.metadata, **changes})


def _fields(config_cls):
    return [f for f in dataclasses.fields(config_cls) if f.metadata.get("flag", True)]


def _type(field, default):
    """bool, int, float, str, or tuple for a field."""
    if default is not None:
        return tuple if isinstance(default, (tuple, list)) else type(default)
    annotation = str(field.type)
    for kind in (bool, int, float, str):
        if kind.__name__ in annotation:
            return kind
    return str


def _item_type(field, default):
    if field.metadata.get("item"):
        return field.metadata["item"]
    return type(default[0]) if default else str


def define_flags(config_cls, flag_values=flags.FLAGS):
    """Defines one flag per field of `config_cls` (a dataclass whose fields
    all have defaults)."""
    defaults = config_cls()
    for field in _fields(config_cls):
        default = getattr(defaults, field.name)
        meta = field.metadata
        help = meta.get("help") or field.name.replace("_", " ")
        kind = _type(field, default)
        if kind is tuple:
            flags.DEFINE_list(field.name, [str(v) for v in default], help, flag_values=flag_values)
        elif meta.get("choices"):
            flags.DEFINE_enum(field.name, default, list(meta["choices"]), help, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(field.name, default, help, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(field.name, default, help, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(field.name, default, help, flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, default, help, flag_values=flag_values)


def _check(name, value, meta):
    items = value if isinstance(value, tuple) else (value,)
    choices, minimum = meta.get("choices"), meta.get("minimum")
    if isinstance(value, tuple) and choices:
        bad = [v for v in items if v not in choices]
        if bad:
            raise app.UsageError(f"--{name}: {','.join(map(str, bad))} not among {', '.join(choices)}.")
    if minimum is not None and any(v is not None and v < minimum for v in items):
        raise app.UsageError(f"--{name} must be at least {minimum}; got {','.join(map(str, items))}.")


def values(config_cls, flag_values=flags.FLAGS, preset=None):
    """The flags of `config_cls` as its keyword arguments, checked; a
    `preset` dict fills the fields that were not given on the command line."""
    defaults = config_cls()
    out = {}
    for field in _fields(config_cls):
        value = flag_values[field.name].value
        if _type(field, getattr(defaults, field.name)) is tuple:
            item = _item_type(field, getattr(defaults, field.name))
            try:
                value = tuple(item(v) for v in value)
            except ValueError:
                raise app.UsageError(f"--{field.name} takes {item.__name__}s; got {','.join(value)}.") from None
        if preset and field.name in preset and not flag_values[field.name].present:
            value = preset[field.name]
        _check(field.name, value, field.metadata)
        out[field.name] = value
    return out
