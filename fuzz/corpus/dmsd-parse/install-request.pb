

os.bfb€