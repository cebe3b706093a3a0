# Writes OUT, a C file defining NAME[] (the bytes of IN) and NAME_len: how the descriptors
# protoc writes for proto/ reach the binary (grpc/reflection.c). cmake -DIN= -DOUT= -DNAME= -P
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed.cmake */\n#include <stddef.h>\n"
     "extern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
     "const unsigned char ${NAME}[] = {${bytes}0};\nconst size_t ${NAME}_len = ${n};\n")
