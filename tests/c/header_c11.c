/* kiln.h is C11: this file is compiled with -std=c11 -pedantic -Wall -Wextra -Werror. */
#include "kiln/kiln.h"

int kiln_header_is_c11(void);
int kiln_header_is_c11(void) {
  kiln_program program;
  kiln_program_init(&program);
  kiln_error error = {0};
  kiln_error_clear(&error);
  return (int)program.size + KILN_ABI_VERSION;
}
