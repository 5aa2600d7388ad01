"""Format files: the access-log format a file holds, as a plain format string, a JSON format object,
or inside Istio/Envoy YAML (MeshConfig, ConfigMap ``data.mesh``, IstioOperator, Telemetry and its
``envoyFileAccessLog`` providers, Envoy config).
"""
from __future__ import annotations

import json

from .formats import _OPERATOR_RX, FormatError, OmittingFormat, _flatten
from .unpack import read_text

_YAML_KEYS = "accessLogFormat, envoyFileAccessLog.logFormat (text or labels), text_format, json_format"


def read_format_file(path: str) -> str | dict:
    """The format held by a file: a plain format string, a JSON format object, or an Istio MeshConfig,
    ConfigMap (``data.mesh``), IstioOperator or Envoy config YAML that contains one."""
    try:
        text = read_text(path)
    except OSError as e:
        raise FormatError(f"cannot read format file {path}: {e.strerror}; check the path") from None
    except UnicodeDecodeError as e:
        raise FormatError(f"format file {path} is not UTF-8 text (byte {e.start + 1} is {e.object[e.start:e.start + 1]!r});"
                          " save it as UTF-8") from None
    stripped = text.strip()
    docs = None
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
            if isinstance(obj, dict):
                if not _holds_formats(obj):
                    return obj
                docs = [obj]  # (JSON indented with tabs is no YAML)
        except ValueError:
            pass
    import yaml

    if docs is None and "%" in stripped and "\n" not in stripped:  # one line with operators: the format
        one = _one_line_yaml(stripped)  # string itself, unless a YAML key holds one (accessLogFormat: "…")
        return stripped if one is None else one

    try:
        docs = docs or [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise FormatError(f"{path} is neither a format string nor valid YAML ({str(e).splitlines()[0]});"
                          " put the format string alone in the file") from None
    found: list = []
    for d in docs:
        _find_formats(d, found)
    # MeshConfig may define several envoyFileAccessLog providers; a Telemetry resource in the same
    # file says which one the proxies use (istio.io access-log task, Telemetry API).
    # Without a Telemetry, meshConfig.defaultProviders.accessLogging does; the built-in provider
    # `envoy` is meshConfig.accessLogFormat itself.
    chosen = {p.get("name") for d in docs for p in _telemetry_providers(d)} or {
        n for node in _nodes(docs) if isinstance(node.get("defaultProviders"), dict)
        for n in node["defaultProviders"].get("accessLogging") or () if isinstance(n, str)}
    providers = {name: f for name, f in _providers(docs)}
    mesh: list = []
    _find_formats([{"accessLogFormat": n["accessLogFormat"]} for n in _nodes(docs) if "accessLogFormat" in n], mesh)
    mesh = list({json.dumps(f, sort_keys=True): f for f in mesh}.values())  # (an IstioOperator and its ConfigMap)
    if len(mesh) == 1 and "envoy" not in providers:
        providers["envoy"] = mesh[0]
        chosen = chosen or {"envoy"}  # (an extension provider nothing selects logs nothing)
    elif not mesh and "envoy" in chosen and "envoy" not in providers:
        raise FormatError(f"{path}: the proxies log with the built-in provider envoy and Istio's default format "
                          "(no meshConfig.accessLogFormat is set); leave out --format-file: logpipe reads "
                          "Istio's default layouts itself")
    if chosen & providers.keys():
        found = [providers[n] for n in chosen & providers.keys()]
    found = list({json.dumps(f, sort_keys=True): f for f in found}.values())
    if not found:
        raise FormatError(f"{path} holds no access-log format (looked for {_YAML_KEYS}); pass the format"
                          " with --format-string, or leave the option out for Istio's defaults")
    if len(found) > 1:
        raise FormatError(f"{path} holds {len(found)} different access-log formats; put the one to use in a"
                          " file of its own or pass it with --format-string")
    return found[0]


def _holds_formats(obj: dict) -> bool:
    """Whether a JSON object is a document that holds formats (``kubectl get configmap istio -o json``,
    a Telemetry or IstioOperator as JSON, an Envoy config), read as its YAML is, not a format object
    itself: none of its own values is an operator's text, and a format key inside it holds one."""
    if any(isinstance(v, str) and _OPERATOR_RX.search(v) for v in obj.values()):
        return False
    found: list = []
    _find_formats(obj, found)
    return bool(found)


def _one_line_yaml(line: str) -> str | dict | None:
    """The format a one-line YAML mapping holds under a format key, else None."""
    import yaml

    try:
        doc = yaml.safe_load(line)
    except yaml.YAMLError:
        return None
    found: list = []
    if isinstance(doc, dict):
        _find_formats(doc, found)
    return found[0] if len(found) == 1 else None


def _telemetry_providers(doc) -> list[dict]:
    if not isinstance(doc, dict) or doc.get("kind") != "Telemetry":
        return []
    logging = (doc.get("spec") or {}).get("accessLogging") or []
    return [p for item in logging if isinstance(item, dict) for p in item.get("providers") or [] if isinstance(p, dict)]


def _nodes(node):
    """Every mapping in ``node``, the YAML text of an istio ConfigMap's ``data.mesh`` read too."""
    import yaml

    if isinstance(node, list):
        for n in node:
            yield from _nodes(n)
    elif isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key == "mesh" and isinstance(value, str):
                try:
                    yield from _nodes(yaml.safe_load(value))
                except yaml.YAMLError:
                    pass
            else:
                yield from _nodes(value)


def _providers(node):
    """(name, format) of each extensionProviders entry with an envoyFileAccessLog format."""
    if isinstance(node, list):
        for n in node:
            yield from _providers(n)
    elif isinstance(node, dict):
        fal = node.get("envoyFileAccessLog")
        if isinstance(fal, dict) and "name" in node:
            found: list = []
            _find_formats(fal, found)
            if found:
                yield node["name"], found[0]
        for v in node.values():
            yield from _providers(v)


def _find_formats(node, found: list) -> None:
    import yaml

    if isinstance(node, list):
        for n in node:
            _find_formats(n, found)
        return
    if not isinstance(node, dict):
        return
    # (Envoy's SubstitutionFormatString: omit_empty_values beside its text_format / text_format_source)
    text = OmittingFormat if node.get("omit_empty_values") is True else str
    for key, value in node.items():
        if key == "mesh" and isinstance(value, str):  # istio ConfigMap: data.mesh is YAML text
            try:
                _find_formats(yaml.safe_load(value), found)
            except yaml.YAMLError:
                pass
        elif key in ("accessLogFormat", "text_format", "format") and isinstance(value, str) and "%" in value:
            stripped = value.strip()
            found.append(json.loads(stripped) if stripped.startswith("{") and _is_json(stripped) else text(value))
        elif key == "text_format_source" and isinstance(value, dict) and "inline_string" in value:
            found.append(text(value["inline_string"]))
        elif key in ("json_format", "typed_json_format", "labels") and isinstance(value, dict) \
                and any(isinstance(v, str) and _OPERATOR_RX.search(v) for v in _flatten(value).values()):
            found.append(value)  # (metadata.labels of any Kubernetes object hold no operator)
        elif key == "logFormat" and isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            elif isinstance(value.get("labels"), dict):
                found.append(value["labels"])
        else:
            _find_formats(value, found)


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
