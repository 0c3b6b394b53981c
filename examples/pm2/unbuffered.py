# Prints whether python runs unbuffered (`-u` in interpreter_args), without
# flushing: the line reaches its log only when python is unbuffered.
import sys, time
print("unbuffered=%d" % sys.stdout.write_through)
time.sleep(300)
