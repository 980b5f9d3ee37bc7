"""GDPO for OpenRLHF (``openrlhf`` 0.11.2): the gdpo_verl estimator driven by OpenRLHF's own experience maker.

- :mod:`.train_ppo_ray`: ``python -m gdpo_verl_plugins.openrlhf.train_ppo_ray <OpenRLHF arguments>
  --algo.advantage.estimator gdpo --gdpo.reward_keys correct,format``
- :mod:`.experience_maker`: ``GDPOExperienceMaker``, a ``RemoteExperienceMaker`` whose ``gdpo`` advantage step runs
  gdpo_verl and then OpenRLHF's own KL / clip / returns functions; every other estimator is the parent's.
- :mod:`.rewards`: the reward-function side (every component, NaN for a missing value, an error for an absent key).
- :mod:`.worker_setup`: the Ray worker setup hook that puts ``GDPOExperienceMaker`` into the trainer processes.

Nothing here imports openrlhf at package import; each module checks the OpenRLHF shapes it uses (:mod:`.shapes`).
"""
