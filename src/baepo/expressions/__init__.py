"""The condition language of analysis: parsed against a whitelist, evaluated without ``eval``.

A foundation layer (it imports only ``baepo.errors``) so that the spec can check every
condition when it is loaded. Callers: ``spec.analysis`` (validation), ``analysis``
(evaluation during analysis runs).
"""
