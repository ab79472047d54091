$
nvidia
mode
config
mode