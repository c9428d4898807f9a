"""What a Python host app does with corral: find plugins, call them, handle
errors. Run it beside a serving corral:

    CORRAL_SOCKET=/run/corral/corral.sock python3 example.py
"""

from corral_client import Corral, CorralError

with Corral(client="example.py") as corral:
    print("corral", corral.server)
    for plugin in corral.list():
        print("plugin", plugin["name"], plugin["state"], ",".join(plugin["provides"]))
    print("upper:", corral.call("hello", "upper", "hello from python").decode())
    print("sum:", corral.call("hello", "sum", "1 2 3 36").decode())
    print("echo bytes:", corral.call("hello", "echo", bytes(range(256))) == bytes(range(256)))
    for plugin in corral.providing("exporter"):
        print("exporter", plugin["name"])
    try:
        corral.call("hello", "nope")
    except CorralError as error:
        print("error kind:", error.kind)
    try:
        corral.call("missing", "echo")
    except CorralError as error:
        print("error kind:", error.kind)
