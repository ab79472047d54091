/* dpfctl: main() only; everything else is in libdpfctl (dpfctl.c). */
#include <stdio.h>

#include "dpfctl/dpfctl.h"

int
main(int argc, char **argv)
{
    return dpfctl_main(argc, argv, stdout, stderr);
}
