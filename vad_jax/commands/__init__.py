"""The user commands, ``vad-jax train|evaluate|calibrate|detect|export|benchmark``
(``vad_jax/__main__.py``; each also runs as ``python -m vad_jax.commands.NAME``): flags
and a short ``main`` over the library, started by ``vad_jax.cli``."""
