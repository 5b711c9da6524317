"""Run one Python component: ``python -m keel.function module:function --name value …``.

This is the command every ``@keel.component`` declares. It imports the module
(from the working directory, which is the component's code folder), reads the
``--<input> <value>`` and ``--<output> <path>`` options against the function's
signature, calls the function, and writes each literal output it returns, as
JSON, to the path given for it. Literal values are passed as text the way Azure ML
passes them: ``3``, ``0.5``, ``True``/``False``.

Bad arguments end with one line on stderr and exit status 2; an exception in the
function ends with its traceback and exit status 1, as any Python program does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from keel.errors import InvalidInput

USAGE = "usage: python -m keel.function <module>:<function> [--<name> <value>]..."


def main(argv: Sequence[str] | None = None) -> int:
    from keel.jobs.python_call import (
        collect_outputs,
        load_function,
        parse_command_line,
        prepare_arguments,
        write_output_value,
    )

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0].startswith("-"):
            raise InvalidInput(USAGE)
        spec = load_function(args[0])
        arguments, files = parse_command_line(spec, args[1:])
        keywords = prepare_arguments(spec, arguments)
    except InvalidInput as exc:
        print(f"keel.function: error: {exc}", file=sys.stderr)
        return 2
    result = spec.function(**keywords)
    try:
        outputs = collect_outputs(spec, result)
    except InvalidInput as exc:
        print(f"keel.function: error: {exc}", file=sys.stderr)
        return 1
    for name, path in files.items():
        if name in outputs:
            write_output_value(path, outputs[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
