/**
 * The console's Mantine theme, chosen for WCAG AA contrast (4.5:1 for text), which axe-core checks
 * in the browser tests: links and filled buttons use shade 8 of the primary colour (Mantine's
 * default 6 is too light on white), the text of light variants (badges) is darkened, and dimmed
 * text is gray 7, a field's error red 8.
 */
import {
  createTheme,
  darken,
  defaultVariantColorsResolver,
  getThemeColor,
  type CSSVariablesResolver,
} from '@mantine/core';

export const theme = createTheme({
  primaryShade: 8,
  // Filled buttons and badges in light colours (orange) get dark text instead of white.
  autoContrast: true,
  variantColorResolver: (input) => {
    const colors = defaultVariantColorsResolver(input);
    if (input.variant !== 'light') return colors;
    return { ...colors, color: darken(getThemeColor(input.color, input.theme), 0.45) };
  },
});

export const cssVariablesResolver: CSSVariablesResolver = (current) => ({
  variables: {},
  light: {
    '--mantine-color-dimmed': current.colors.gray[7],
    // A field's error sentence (red 6 on white is 3.3:1).
    '--mantine-color-error': current.colors.red[8],
  },
  dark: {},
});
