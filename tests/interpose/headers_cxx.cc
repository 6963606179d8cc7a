// tests/interpose/headers_cxx.cc — the public headers in C++, after
// <sys/user.h>, under -Wall -Wextra -Wpedantic -Werror.
#include <sys/user.h>

#include <kslab/kslab.h>

extern "C" unsigned long headers_cxx_page_size(void);

extern "C" unsigned long headers_cxx_page_size(void)
{
    static_assert(GFP_KERNEL == 0x87, "2.4's GFP_KERNEL");
    return PAGE_SIZE;
}
