

nvidia
mode
mode