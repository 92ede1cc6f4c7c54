"""From comparison scores to a decision: calibrate scores into likelihood ratios, fuse them, apply policy.

    calibration  raw score -> log-likelihood ratio per modality; thresholds for a target FMR
    fusion       sum the LLRs of the factors used, decide against the threshold; a close call asks for a
                 second finger (sequential fusion, its own share of the FMR budget)
    policy       which factors an operation needs (transaction context + configuration)
    lockout      attempt limits, lockout with growing delay, total cap (pure functions on stored state)

No I/O here except reading the calibration file: the daemon (edge.service) loads and saves state.

May import: edge.biometrics (comparisons, in scoring), edge.store (its records), edge.audit, edge.errors,
edge.sections. Never edge.config, edge.service or above.
"""
