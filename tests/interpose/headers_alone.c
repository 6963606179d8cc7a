/*
 * tests/interpose/headers_alone.c — <kslab/vm.h> stands alone: it brings
 * the GFP flags (<kslab/gfp.h>) and not the slab API.
 */
#include <kslab/vm.h>

#ifdef KSLAB_SLAB_H
#error "<kslab/vm.h> includes <kslab/slab.h>"
#endif
#ifndef GFP_KERNEL
#error "<kslab/vm.h> does not give the GFP flags"
#endif

int headers_alone_gfp(void);

int headers_alone_gfp(void)
{
    return GFP_HIGHUSER;
}
