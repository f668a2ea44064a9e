"""Shared parameter documentation of the release functions."""

COMMON = """
    epsilon
        Pure-DP loss per subscriber over the window: discrete Laplace noise.
    rho
        zCDP loss per subscriber over the window: discrete Gaussian noise
        (reported as epsilon at ``delta``). Pass exactly one of epsilon/rho.
    delta
        Needed (> 0) when ``keys=None`` (private partition selection); for
        ``rho`` also the delta at which epsilon is reported.
    keys
        Public :class:`~privagg.queries.KeySet`: every key is released, empty
        ones included. ``None``: keys are selected privately (needs delta).
    bounds
        :class:`~privagg.dp.bounds.Bounds` per subscriber (L0, Linf, total C,
        clamping). ``None`` (default): chosen privately with 3% of the loss
        (count statistics with public keys; otherwise the statistic's public
        defaults); ``"default"``: the public defaults.
    mechanism
        ``"auto"`` (default): discrete Laplace or discrete Gaussian, whichever
        has the lower variance at the bounds (the Gaussian under ``epsilon``
        only with ``delta > 0``); or ``"laplace"`` / ``"gaussian"``.
    budget
        :class:`~privagg.dp.budget.Budget` to charge; the release is refused
        (before any noise) if it does not fit.
    users
        The users table; required with raw tables, so that subscribers with
        ``opt_in == False`` are excluded. Taken from the World when given one.
    cells
        The cells table (maps cells to zones and districts; public keys).
    start, end
        The window ``[start, end)`` (the privacy unit's); by default the
        public keys' time range or the World's window.
    ci_level
        Coverage of the intervals ``ci_low``..``ci_high`` (noise only).
    engine
        The :class:`~privagg.engines.base.Engine` running bounding and
        aggregation (default: local numpy engine).

    Returns
    -------
    Release
        ``to_pandas()``: key columns, ``value``, ``ci_low``, ``ci_high``;
        ``privacy``: the :class:`~privagg.release.PrivacyRecord`.
"""
