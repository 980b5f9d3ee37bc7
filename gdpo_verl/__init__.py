"""gdpo-verl: GDPO (Group reward-Decoupled Normalization Policy Optimization, arXiv 2601.05242) for veRL.

The math lives in :mod:`gdpo_verl.core` (torch only); verl integration lives in the ``gdpo_verl_plugins`` package.
"""

__version__ = "0.1.0"
