"""Read a ``baepo.yaml`` into a :class:`~baepo.spec.models.Spec`, or fail with located problems.

Any text in gives a ``Spec`` or a :class:`~baepo.errors.ConfigError`, never another exception.
Each problem names the key path (``strategy.rolling.max_surge``), the line in the file and what
was expected. YAML is read with the YAML 1.2 core schema (``yes``/``on`` stay strings, no dates),
duplicate keys are errors, and values are checked strictly (``replicas: "3"`` or ``version: 1.10``
are refused with a hint to fix them rather than silently converted). Top-level keys starting
with ``x-`` are ignored, so they can hold YAML anchors (``x-env: &env {...}``).

With ``env=``, the overlay ``environments.<env>`` is merged over the base before validation
(:mod:`baepo.spec.overlays`); problems in a value the overlay set point into the overlay
(``environments.production.replicas``). The base and every overlay are checked, whichever
``env`` is asked for.

Callers: the CLI (``validate``, ``deploy``, ``config show``), the API (spec bodies), tests.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from baepo.errors import ConfigError, Problem
from baepo.spec import analysis, listeners, overlays, secrets
from baepo.spec.files import INIT_HINT
from baepo.spec.models import Spec
from baepo.spec.text import control_problem

MAX_SPEC_CHARS = 256_000
MAX_DEPTH = 64
MAX_NODES = 20_000
MAX_PROBLEMS = 50
REFERENCE_HINT = "every key is described in docs/spec.md; `baepo schema` prints a JSON Schema"

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


@dataclass(frozen=True)
class LoadedSpec:
    """A spec read from a file: the model, the file's absolute path, its folder and its text.

    ``env`` is the environment whose overlay was merged in (None: the base), and ``sources``
    maps each key path the overlay set (``run.env.LOG_LEVEL``) to ``environments.<env>``.
    """

    spec: Spec
    path: Path
    directory: Path
    text: str
    env: str | None = None
    sources: dict[str, str] = field(default_factory=dict)


def load_spec(path: Path, *, env: str | None = None) -> LoadedSpec:
    """Read and validate the spec file at ``path``, resolved for ``env`` (None: the base)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file", hint=INIT_HINT) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = Problem("", f"not UTF-8 text (byte {raw[exc.start]:#04x})", line, str(path))
        raise ConfigError(f"{path}: not a valid baepo spec", problems=[problem]) from exc
    spec, sources = parse_spec_with_sources(text, source=str(path), env=env)
    absolute = path.resolve()
    return LoadedSpec(
        spec=spec, path=absolute, directory=absolute.parent, text=text, env=env, sources=sources
    )


def parse_spec(text: str, *, source: str = "<string>", env: str | None = None) -> Spec:
    """Validate spec ``text`` resolved for environment ``env`` (None: the base, no overlay);
    ``source`` names it in error messages (usually the file path). An ``env`` that
    ``environments:`` does not name gets the base unchanged."""
    return parse_spec_with_sources(text, source=source, env=env)[0]


def spec_source(text: str) -> dict[str, Any]:
    """The spec as written (overlays included, ``x-`` keys dropped) as JSON-able data, for a
    revision to keep; ``parse_spec(yaml.safe_dump(source), env=...)`` resolves it again for
    any environment. Call it on text :func:`parse_spec` accepted."""
    data = yaml.safe_load(text)
    kept = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    plain: dict[str, Any] = json.loads(json.dumps(kept, default=str))
    return plain


def parse_spec_with_sources(
    text: str, *, source: str = "<string>", env: str | None = None
) -> tuple[Spec, dict[str, str]]:
    """Like :func:`parse_spec`, also returning the overlay's key paths and their origin."""
    if len(text) > MAX_SPEC_CHARS:
        _fail(source, [Problem("", f"too large: a spec has at most {MAX_SPEC_CHARS} characters")])
    try:
        root, data, duplicates, loader = _read_yaml(text)
    except yaml.YAMLError as exc:
        _fail(source, [_yaml_problem(exc, text)])
    except RecursionError:
        _fail(source, [Problem("", "nested too deeply to read")])
    if root is None:
        _fail(source, [Problem("", "the file is empty; a spec needs at least `app` and `run`")])
    if not isinstance(root, MappingNode) or not isinstance(data, dict):
        got = _describe_node(root)
        message = f"the top level must be a mapping of keys (app: ..., run: ...), got {got}"
        _fail(source, [Problem("", message, root.start_mark.line + 1)])
    problems = list(duplicates)
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    for loc, message in [*overlays.fixed_key_problems(data), *_control_findings(data)]:
        path, line, _node = _locate(loc, data, root, loader)
        problems.append(Problem(path, message, line))
    spec, resolved = _validate(data, env, root, loader, problems)
    for other in [None, *overlays.environment_names(data)]:
        if other != env:
            _validate(data, other, root, loader, problems)
    unique = list({(p.path, p.message, p.line): p for p in problems}.values())
    if unique or spec is None:
        _fail(source, unique)
    return spec, resolved.sources


def _control_findings(data: Any) -> list[tuple[tuple[int | str, ...], str]]:
    """Every string (key or value) of the spec that holds a control character."""
    findings: list[tuple[tuple[int | str, ...], str]] = []
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            problem = control_problem(value)
            if problem is not None:
                findings.append((loc, problem))
        elif isinstance(value, dict):
            for key, child in value.items():
                problem = control_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    findings.append(((*loc, key), f"in the key {key!r}: {problem}"))
                else:
                    stack.append(((*loc, key), child))
        elif isinstance(value, list):
            stack.extend(((*loc, index), child) for index, child in enumerate(value))
    return findings


def _validate(
    data: dict[Any, Any], env: str | None, root: Node, loader: _SpecLoader, problems: list[Problem]
) -> tuple[Spec | None, overlays.Resolved]:
    """Validate ``data`` resolved for ``env``, adding located problems to ``problems``."""
    resolved = overlays.resolve_with_origins(data, env)

    def where(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
        origin = resolved.origin_of(loc)
        return loc if origin is None else (overlays.ENVIRONMENTS_KEY, str(env), *loc)

    spec: Spec | None = None
    try:
        spec = Spec.model_validate(resolved.data, strict=True)
    except ValidationError as exc:
        problems += [_translate(e, data, root, loader, where) for e in exc.errors()]
    if spec is not None:
        findings = [
            *analysis.check_analysis(spec.analysis, spec.strategy),
            *listeners.check_listeners(spec, lambda loc: resolved.origin_of(loc) is not None),
            *secrets.check_secrets(spec.secrets),
        ]
        for loc, message in findings:
            path, line, _node = _locate(where(loc), data, root, loader)
            problems.append(Problem(path, message, line))
    return spec, resolved


def _fail(source: str, problems: list[Problem]) -> NoReturn:
    located = [Problem(p.path, p.message, p.line, p.source or source) for p in problems]
    located.sort(key=lambda p: (p.line or 0, p.path))
    if len(located) > MAX_PROBLEMS:
        rest = len(located) - MAX_PROBLEMS
        located = [*located[:MAX_PROBLEMS], Problem("", f"... and {rest} more", None, source)]
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    raise ConfigError(
        f"{source}: not a valid baepo spec ({count} {noun})", problems=located, hint=REFERENCE_HINT
    )


# --- YAML ------------------------------------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema, a depth limit, no recursive aliases, and a
    record of the key and value nodes behind each constructed mapping."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    yaml_constructors: ClassVar[dict[str | None, Any]] = {}

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.open_anchors: set[str] = set()
        self.keys: dict[int, dict[Hashable, tuple[Node, Node]]] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        anchor: str | None = getattr(event, "anchor", None)
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            if anchor in self.open_anchors:
                message = f"alias *{anchor} refers to a value that contains it"
                raise yaml.composer.ComposerError(None, None, message, mark)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            message = f"nested more than {MAX_DEPTH} levels deep"
            raise _LimitExceeded(None, None, message, mark)
        self.depth += 1
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.discard(anchor or "")

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        mapping = super().construct_mapping(node, deep)
        keys: dict[Hashable, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            keys[self.construct_object(key_node, deep)] = (key_node, value_node)
        self.keys[id(node)] = keys
        return mapping

    def _construct_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)
        except ValueError as exc:
            raise _constructor_error(node, f"not an integer: {text[:40]!r}") from exc

    def _construct_float(self, node: ScalarNode) -> float:
        text = str(self.construct_scalar(node)).lower().replace("_", "")
        try:
            return float(text.replace(".inf", "inf").replace(".nan", "nan"))
        except ValueError as exc:
            raise _constructor_error(node, f"not a number: {text[:40]!r}") from exc

    def _construct_bool(self, node: ScalarNode) -> bool:
        text = str(self.construct_scalar(node))
        if text.lower() not in ("true", "false"):
            raise _constructor_error(node, f"not true or false: {text[:40]!r}")
        return text.lower() == "true"

    def _construct_undefined(self, node: Node) -> None:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _constructor_error(node, f"the YAML tag {tag} is not supported in a spec")


def _constructor_error(node: Node, message: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(None, None, message, node.start_mark)


class _LimitExceeded(yaml.composer.ComposerError):
    """The document is valid YAML but too deep or too large for a spec."""


def _setup_loader() -> None:
    core = "tag:yaml.org,2002:"
    resolvers = [
        ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
        ("int", _INT_RE.pattern, list("-+0123456789")),
        ("float", _FLOAT_RE.pattern, list("-+0123456789.")),
        ("merge", r"^(?:<<)$", ["<"]),
    ]
    for name, pattern, first in resolvers:
        _SpecLoader.add_implicit_resolver(core + name, re.compile(pattern), first)
    constructors: dict[str | None, Any] = {
        core + "null": yaml.SafeLoader.construct_yaml_null,
        core + "bool": _SpecLoader._construct_bool,
        core + "int": _SpecLoader._construct_int,
        core + "float": _SpecLoader._construct_float,
        core + "str": yaml.SafeLoader.construct_yaml_str,
        core + "seq": yaml.SafeLoader.construct_yaml_seq,
        core + "map": yaml.SafeLoader.construct_yaml_map,
        None: _SpecLoader._construct_undefined,
    }
    for tag, constructor in constructors.items():
        _SpecLoader.add_constructor(tag, constructor)


_setup_loader()


def _read_yaml(text: str) -> tuple[Node | None, Any, list[Problem], _SpecLoader]:
    loader = _SpecLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None, [], loader
        _check_size(root)
        duplicates = _duplicates(loader, root)
        return root, loader.construct_document(root), duplicates, loader
    finally:
        loader.dispose()


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_size(root: Node) -> None:
    """Refuse documents whose aliases expand to more than MAX_NODES values ("billion laughs")."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in sizes:
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
            continue
        total = 1 + sum(sizes[id(child)] for child in _children(node))
        sizes[id(node)] = min(total, MAX_NODES + 1)
    if sizes[id(root)] > MAX_NODES:
        message = f"too large: more than {MAX_NODES} values (counting every use of an alias)"
        raise _LimitExceeded(None, None, message, root.start_mark)


def _duplicates(loader: _SpecLoader, root: Node) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        if not isinstance(node, MappingNode):
            continue
        first: dict[Hashable, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                stack.append((value_node, path))
                continue
            key = loader.construct_object(key_node) if isinstance(key_node, ScalarNode) else None
            child = _join(path, key)
            if isinstance(key, Hashable) and key is not None and key in first:
                line = first[key].start_mark.line + 1
                message = f"duplicate key {key!r} (first set on line {line}); keep only one"
                problems.append(Problem(child, message, key_node.start_mark.line + 1))
            elif isinstance(key, Hashable) and key is not None:
                first[key] = key_node
            stack.append((value_node, child))
    return problems


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return Problem("", f"unreadable character {shown}: {exc.reason}", line)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            message = f"{message} ({exc.context} on line {exc.context_mark.line + 1})"
        prefix = "" if isinstance(exc, _LimitExceeded) else "invalid YAML: "
        return Problem("", f"{prefix}{message}", mark.line + 1 if mark else None)
    return Problem("", f"invalid YAML: {exc}")


# --- Pydantic errors to problems ---------------------------------------------------------------


def _join(path: str, key: object) -> str:
    name = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return f"{path}.{name}" if path else name
    return f"{path}[{name!r}]"


def _describe_node(node: Node | None) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node is None or node.tag.endswith(":null"):
        return "an empty value"
    value = str(node.value)
    shown = value if len(value) <= 40 else value[:37] + "..."
    return repr(shown) if node.tag.endswith(":str") else shown


def _locate(
    loc: tuple[int | str, ...], data: Any, root: Node, loader: _SpecLoader
) -> tuple[str, int, Node | None]:
    """Follow ``loc`` through the data: the key path, its line (or the nearest parent's line)
    and the value's node (None when the key is missing)."""
    path, line, node, value = "", root.start_mark.line + 1, root, data
    for index, part in enumerate(loc):
        if part == "[key]":
            return path, line, None
        child: tuple[Node, Node] | None = None
        if isinstance(value, dict) and isinstance(node, MappingNode):
            with_keys = loader.keys.get(id(node), {})
            child = with_keys.get(part) if part in value else None
            value = value.get(part)
            path = _join(path, part)
        elif isinstance(value, list) and isinstance(node, SequenceNode) and isinstance(part, int):
            path = f"{path}[{part}]"
            if 0 <= part < len(node.value):
                child = (node.value[part], node.value[part])
                value = value[part]
        else:
            path = _join(path, part)
        if child is None:
            for rest in loc[index + 1 :]:
                if isinstance(rest, int):
                    path = f"{path}[{rest}]"
                elif rest != "[key]":
                    path = _join(path, rest)
            return path, line, None
        line, node = child[0].start_mark.line + 1, child[1]
    return path, line, node


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    current: Any = Spec
    for part in (*loc, None):
        if get_origin(current) in (Union, types.UnionType):
            members = [arg for arg in get_args(current) if arg is not type(None)]
            current = members[0] if len(members) == 1 else current
        if part is None:
            break
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _range(parent: type[BaseModel] | None, loc: tuple[int | str, ...]) -> tuple[Any, Any] | None:
    """The ``(ge, le)`` bounds of the field at ``loc`` when it has both, else None."""
    field = parent.model_fields.get(str(loc[-1])) if parent and loc else None
    if field is None:
        return None
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    return None if low is None or high is None else (low, high)


def _translate(
    error: ErrorDetails,
    data: Any,
    root: Node,
    loader: _SpecLoader,
    where: Callable[[tuple[int | str, ...]], tuple[int | str, ...]] = lambda loc: loc,
) -> Problem:
    """One Pydantic error as a problem; ``where`` maps the error's key path in the validated
    data to the path in the file (into an environment overlay when the overlay set it)."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "invalid_key" and loc:
        loc = (*loc[:-1], error["input"])
    path, line, node = _locate(where(loc), data, root, loader)
    got = _describe_node(node) if node is not None else repr(error.get("input"))[:40]
    is_key = bool(loc) and loc[-1] == "[key]"
    parent = _model_at(loc[:-1])
    fields = list(parent.model_fields) if parent else []
    ctx = error.get("ctx") or {}
    if kind in ("extra_forbidden", "invalid_key"):
        name = str(loc[-1])
        close = difflib.get_close_matches(name, fields, n=1)
        advice = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(fields)}"
        message = f"unknown key {loc[-1]!r}; {advice}"
    elif kind == "missing":
        field = parent.model_fields.get(str(loc[-1])) if parent else None
        message = f"required: {(field.description if field else None) or 'this key must be set'}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"expected an integer, got {got}"
    elif kind == "string_type":
        message = f"expected {'a key that is ' if is_key else ''}a string, got {got}"
        if isinstance(node, ScalarNode) and node.style is None and node.tag[-4:] != "null":
            message += f'; quote it: "{node.value}"'
        elif is_key:
            message += "; quote it"
    elif kind in ("bool_type", "bool_parsing"):
        message = f"expected true or false, got {got}"
    elif kind == "list_type":
        message = f'expected a list such as ["a", "b"], got {got}'
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        model = _model_at(loc)
        keys = f" ({', '.join(model.model_fields)})" if model and model.model_fields else ""
        message = f"expected a mapping of keys{keys}, got {got}"
    elif kind == "less_than_equal" and _range(parent, loc):
        low, high = _range(parent, loc) or (0, 0)
        message = f"must be from {low} to {high}, got {got}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "or more", "less_than_equal": "or less"}
        bound = next(iter(ctx.values()), "?")
        if kind in words:
            message = f"must be {bound} {words[kind]}, got {got}"
        else:
            message = f"must be {kind.replace('_', ' ')} {bound}, got {got}"
    elif kind == "too_short":
        message = f"needs at least {ctx.get('min_length', 1)} item(s)"
    elif kind == "string_pattern_mismatch":
        field = parent.model_fields.get(str(loc[-1])) if parent else None
        message = f"{got} is not valid. {(field.description if field else '') or ''}".strip()
    elif kind == "literal_error":
        message = f"expected one of {ctx.get('expected', '?')}, got {got}"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"]
    return Problem(path, message, line)
