# Writes OUT, a C file defining NAME[] (the bytes of IN, then a 0 that NAME_len does not
# count) and NAME_len: how files reach the binary as they are, the descriptors protoc
# writes for proto/ (grpc/reflection.c) and the status page (api/status_page.c).
# cmake -DIN= -DOUT= -DNAME= -P
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed.cmake */\n#include <stddef.h>\n"
     "extern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
     "const unsigned char ${NAME}[] = {${bytes}0};\nconst size_t ${NAME}_len = ${n};\n")
