"""TaskFlow's public API as thin aliases onto tideflow, so TaskFlow programs run unchanged.

Each module here mirrors a TaskFlow module of the same name and re-exports the
tideflow objects that play its part; TaskFlow's spellings (engine options, state
constants, exception names) are translated at this edge and nowhere else.
"""
