
nvidia
os
a/b