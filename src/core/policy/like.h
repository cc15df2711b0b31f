/*
 * like.h — SQL LIKE matching for application_name patterns (pure C++).
 */
#ifndef POOLGUARD_CORE_LIKE_H
#define POOLGUARD_CORE_LIKE_H

#include <string_view>

namespace poolguard::core
{

/*
 * True if text matches pattern with SQL LIKE semantics: '%' matches any sequence, '_' exactly
 * one character (a whole UTF-8 sequence), '\' escapes the next character; case-sensitive.
 * Runs in O(|pattern| * |text|) worst case with no recursion.
 */
bool like_match(std::string_view text, std::string_view pattern);

/* True if pattern is a well-formed LIKE pattern (it does not end in a lone escape). */
bool like_pattern_valid(std::string_view pattern);

} // namespace poolguard::core

#endif
