"""`gdpo-verl quickstart`: real verl ``main_ppo`` on CPU with a tiny local model and a two-reward task.

``command.build(cfg, assets)`` makes the verl command and its environment (pure); ``runner.run(cmd, ...)`` runs it
owning every process it starts (``process_tree``); ``console`` reads verl's output, ``display`` shows it;
``output_folder`` guards the run's folder; ``assets`` builds the model and data, ``tasks`` names the reward tasks,
``report`` makes the per-step figures; ``cli`` ties them together.
"""
