"""`pc3d plugins`: list installed plugins, their versions and what each registers."""

from __future__ import annotations

import argparse
import json

from pc3d.plugin_manager import PluginInfo, get_plugin_manager


def register(subparsers: argparse._SubParsersAction) -> None:
    # Declared like pc3d config's actions (see pc3d.cli.arguments): the options are this command's own.
    parser = subparsers.add_parser(
        "plugins",
        help="list plugins: distribution, version, what each registers",
        description="List the plugins pc3d found (entry-point group 'pc3d'): distribution, "
        "version and the components each registers, by kind. Failed, blocked and disabled "
        "plugins are listed with the reason. Exit status 1 if a plugin failed or two conflict.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of failed plugins")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    manager = get_plugin_manager()
    conflicts = [c.message() for c in manager.registry.conflicts]
    if args.json:
        payload = {"plugins": [p.to_dict() for p in manager.plugins], "conflicts": conflicts}
        print(json.dumps(payload, indent=2))
    else:
        if not manager.plugins:
            print("no plugins installed (entry-point group 'pc3d')")
        for info in manager.plugins:
            print(_describe(info, verbose=args.verbose))
        for message in conflicts:
            print(f"CONFLICT: {message}")
    return 1 if manager.failed or conflicts else 0


def _describe(info: PluginInfo, *, verbose: bool) -> str:
    head = f"{info.label} {info.version or '(no version)'}  [{info.name} = {info.source}]"
    if info.status != "loaded":
        head += f"  {info.status.upper()}"
    lines = [head]
    if info.error:
        lines.append(f"  error: {info.error}")
        if verbose and info.error_traceback:
            lines.extend("    " + line for line in info.error_traceback.rstrip().splitlines())
    for kind, names in info.registered.items():
        lines.append(f"  {kind}: {', '.join(names)}")
    if info.status == "loaded" and not info.registered:
        lines.append("  (registers no components)")
    lines.extend(f"  configs: {folder}" for folder in info.config_dirs)
    if info.commands:
        lines.append(f"  commands: {', '.join(info.commands)}")
    lines.extend(f"  warning: {w}" for w in info.warnings)
    return "\n".join(lines)
