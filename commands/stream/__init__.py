"""The stream aggregate, one module per context: `state` composes the contexts' states, `evolve`
and `decide` route each event and command to the context that owns it, `storage` is the stored form.

Kept free of imports: `commands.streams` reads constants from `stream.state` while the context
modules import `commands.streams`.
"""
